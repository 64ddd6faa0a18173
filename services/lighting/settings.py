from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from services.lighting.domain.circuit import LAMP_W
from services.lighting.domain.night import Town, parse_window
from shared.factors import FactorOverrides
from shared.settings import StreamServiceSettings


class LightingSettings(StreamServiceSettings):
    http_port: int = 18107
    instance: str = "lighting-1"
    group_id: str = "lighting"
    max_devices: int = 5000
    # Where the town is (sunrise and sunset): TOWNPULSE_TOWN_LATITUDE / _LONGITUDE, degrees.
    # Default: Paris; set the town's own.
    town_latitude: float = Field(default=48.8566, ge=-90, le=90)
    town_longitude: float = Field(default=2.3522, ge=-180, le=180)
    # The council's schedule, local hours "HH:MM-HH:MM" (may span midnight), empty for none:
    # lights switched off, lights dimmed to `lighting_dim_pct` % of full power.
    lighting_off_hours: str = ""
    lighting_dim_hours: str = ""
    lighting_dim_pct: float = Field(default=50.0, ge=0, le=100)
    # Lights on this long after sunrise (or still off this long after sunset) is a fault.
    lighting_tolerance_min: int = Field(default=30, ge=0, le=180)
    # One lamp's power: a drop of about this much, sustained, is a failed lamp (an LED street
    # lamp draws 30-100 W, a sodium lamp with its ballast 80-170 W).
    lighting_lamp_w: float = Field(default=LAMP_W, gt=0, le=2000)
    # Tariff and CO2e factor overrides (shared/factors, TOWNPULSE_FACTORS like waste's).
    factors: FactorOverrides = Field(default_factory=dict)

    @field_validator("lighting_off_hours", "lighting_dim_hours")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value

    def town(self) -> Town:
        return Town(
            latitude=self.town_latitude,
            longitude=self.town_longitude,
            zone=self.timezone,
            off=parse_window(self.lighting_off_hours),
            dim=parse_window(self.lighting_dim_hours),
            dim_pct=self.lighting_dim_pct,
            tolerance=timedelta(minutes=self.lighting_tolerance_min),
        )
