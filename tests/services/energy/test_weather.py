"""The outdoor temperature the energy service keeps for its forecasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.energy.domain.weather import KEEP, MAX_AGE, OutdoorTemperature
from shared.schemas import Reading

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _r(minutes: int, value: float, metric: str = "temperature_c") -> Reading:
    return Reading(ts=T0 + timedelta(minutes=minutes), metric=metric, value=value)


def test_the_temperature_at_a_time_is_the_latest_reading_before_it_while_recent() -> None:
    w = OutdoorTemperature()
    # Out of order, with a reading of another metric that is no temperature.
    w.observe([_r(60, 5.0), _r(0, 4.0), _r(30, 99.0, metric="humidity_pct")])
    assert w.at(T0 - timedelta(minutes=1)) is None
    assert w.at(T0 + timedelta(minutes=59)) == 4.0
    assert w.at(T0 + timedelta(minutes=60)) == 5.0
    assert w.at(T0 + timedelta(minutes=60) + MAX_AGE) == 5.0
    assert w.at(T0 + timedelta(minutes=61) + MAX_AGE) is None  # the sensor went quiet


def test_old_readings_are_dropped() -> None:
    w = OutdoorTemperature()
    hours = int(KEEP / timedelta(hours=1)) + 10
    w.observe([_r(60 * h, float(h)) for h in range(hours)])
    assert w.at(T0 + timedelta(hours=5)) is None
    assert w.at(T0 + timedelta(hours=hours - 1)) == hours - 1
    # A repeated reading replaces the value, it is not counted twice.
    w.observe([_r(60 * (hours - 1), -1.0)])
    assert w.at(T0 + timedelta(hours=hours - 1)) == -1.0
