from __future__ import annotations

from shared.settings import ServiceSettings


class EnergySettings(ServiceSettings):
    http_port: int = 18103
    instance: str = "energy-1"
    group_id: str = "energy"
    # Device states kept in memory (each ~20-40 KB); the rest wait in their checkpoints.
    max_devices: int = 2000
    # Records per transaction: big enough to amortise the commit, small enough that a
    # rebalance (which waits for the batch in progress) stays quick.
    batch_max_records: int = 2000
    batch_wait_ms: int = 200
