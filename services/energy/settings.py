from __future__ import annotations

from pydantic import Field

from services.energy.domain.meter import FORECASTER
from shared.ml.registry import ModelSpec
from shared.settings import StreamServiceSettings
from shared.topics import DEVICE_ID_RE


class EnergySettings(StreamServiceSettings):
    http_port: int = 18103
    instance: str = "energy-1"
    group_id: str = "energy"
    # Device states kept in memory (each ~51 kB once its profiles are full, docs/runtime.md); the
    # rest wait in their checkpoints.
    max_devices: int = 2000
    # A River anomaly detector that scores readings instead of the built-in anomaly likelihood
    # (JSON, e.g. {"path": "river.anomaly.HalfSpaceTrees", "params": {"seed": 1}}); the
    # forecast and its band stay the calendar forecaster's. See docs/energy.md.
    anomaly_scorer: ModelSpec | None = None
    # The meters' forecaster (TOWNPULSE_ENERGY_FORECASTER, JSON): the stored 24 h forecasts and
    # the detector's expected value. Any River forecaster (river.time_series.SNARIMAX...) or
    # regressor (fed calendar features); the default is the benchmarked one. See docs/energy.md.
    energy_forecaster: ModelSpec = FORECASTER
    # The device whose readings (metric temperature_c) are the town's outdoor temperature
    # (TOWNPULSE_ENERGY_TEMPERATURE_DEVICE): the forecasts then learn each meter's response to
    # the weather. Unset: no temperature, as before. See docs/energy.md.
    energy_temperature_device: str | None = Field(default=None, pattern=DEVICE_ID_RE.pattern)
