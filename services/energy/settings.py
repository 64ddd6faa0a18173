from __future__ import annotations

from shared.settings import StreamServiceSettings


class EnergySettings(StreamServiceSettings):
    http_port: int = 18103
    instance: str = "energy-1"
    group_id: str = "energy"
    # Device states kept in memory (each ~20-40 KB); the rest wait in their checkpoints.
    max_devices: int = 2000
