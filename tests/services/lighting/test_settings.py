"""The town's coordinates and the council's schedule come from the environment, checked."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from services.lighting.settings import LightingSettings

pytestmark = pytest.mark.unit


def test_the_town_and_its_schedule_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOWNPULSE_TOWN_LATITUDE", "43.6045")
    monkeypatch.setenv("TOWNPULSE_TOWN_LONGITUDE", "1.4440")
    monkeypatch.setenv("TOWNPULSE_TIMEZONE", "Europe/Paris")
    monkeypatch.setenv("TOWNPULSE_LIGHTING_OFF_HOURS", "23:30-05:00")
    monkeypatch.setenv("TOWNPULSE_LIGHTING_DIM_HOURS", "21:00-23:30")
    town = LightingSettings(dev_mode=True).town()
    assert (town.latitude, town.longitude) == (43.6045, 1.4440)
    assert town.off == (time(23, 30), time(5))
    assert town.dim == (time(21), time(23, 30))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOWNPULSE_TOWN_LATITUDE", "91"),
        ("TOWNPULSE_LIGHTING_OFF_HOURS", "25:00-05:00"),
        ("TOWNPULSE_LIGHTING_DIM_HOURS", "22:00"),
        ("TOWNPULSE_LIGHTING_DIM_HOURS", "22:00-22:00"),
        ("TOWNPULSE_LIGHTING_LAMP_W", "0"),
    ],
)
def test_a_bad_setting_is_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        LightingSettings(dev_mode=True)
