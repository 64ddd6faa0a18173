from __future__ import annotations

from pydantic import Field

from services.lighting.domain.circuit import LAMP_W
from shared.factors import FactorOverrides
from shared.night import ScheduleSettings
from shared.settings import StreamServiceSettings


class LightingSettings(StreamServiceSettings, ScheduleSettings):
    """The stream service's settings, and the town's coordinates and lighting schedule
    (shared.night.ScheduleSettings: TOWNPULSE_TOWN_LATITUDE, TOWNPULSE_LIGHTING_OFF_HOURS...)."""

    http_port: int = 18107
    instance: str = "lighting-1"
    group_id: str = "lighting"
    max_devices: int = 5000
    # One lamp's power: a drop of about this much, sustained, is a failed lamp (an LED street
    # lamp draws 30-100 W, a sodium lamp with its ballast 80-170 W).
    lighting_lamp_w: float = Field(default=LAMP_W, gt=0, le=2000)
    # Tariff and CO2e factor overrides (shared/factors, TOWNPULSE_FACTORS like waste's).
    factors: FactorOverrides = Field(default_factory=dict)
