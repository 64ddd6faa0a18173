from __future__ import annotations

from shared.settings import ServiceSettings


class TrafficSettings(ServiceSettings):
    http_port: int = 18106
    instance: str = "traffic-1"
    group_id: str = "traffic"
    # Device states kept in memory (each ~60 KB: two week-long 15-minute profiles); the rest
    # wait in their checkpoints.
    max_devices: int = 2000
    # Records per transaction: big enough to amortise the commit, small enough that a
    # rebalance (which waits for the batch in progress) stays quick.
    batch_max_records: int = 2000
    batch_wait_ms: int = 200
