from __future__ import annotations

from services.traffic.domain.counter import FORECASTER
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
    # forecast and its band stay the forecaster's. See docs/energy.md.
    anomaly_scorer: ModelSpec | None = None
    # The counters' expected flow and speed (TOWNPULSE_TRAFFIC_FORECASTER, JSON): any River
    # forecaster (river.time_series.SNARIMAX...) or regressor (fed calendar features); the
    # forecast adds the counter's fading residual correction to it. See docs/traffic.md.
    traffic_forecaster: ModelSpec = FORECASTER
