from __future__ import annotations

from shared.ml.registry import ModelSpec
from shared.settings import StreamServiceSettings


class TrafficSettings(StreamServiceSettings):
    http_port: int = 18106
    instance: str = "traffic-1"
    group_id: str = "traffic"
    # Device states kept in memory (each ~60 KB: two week-long 15-minute profiles); the rest
    # wait in their checkpoints.
    max_devices: int = 2000
    # A River anomaly detector that scores readings instead of the built-in anomaly likelihood
    # (JSON, e.g. {"path": "river.anomaly.HalfSpaceTrees", "params": {"seed": 1}}); the
    # forecast and its band stay the calendar forecaster's. See docs/energy.md.
    anomaly_scorer: ModelSpec | None = None
