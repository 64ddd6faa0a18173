"""The simulated lighting cabinets: lit from sunset to sunrise at the town's coordinates, as the
council's schedule says at night, and their labelled faults."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from astral import Observer
from astral.sun import sunrise, sunset

from shared.night import Town as Schedule
from townpulse.simulator.lighting import metrics
from townpulse.simulator.town import Domain, LightSpec, Zone, build_town

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
LAT, LON = 45.9, 6.12
SCHEDULE = Schedule(
    latitude=LAT,
    longitude=LON,
    zone="Europe/Paris",
    off=(time(1), time(5)),
    dim=(time(22), time(6)),
    dim_pct=40.0,
)
SPEC = LightSpec(zone=Zone.CENTRE, lamps=20, lamp_w=60.0, circuits=2)
STEP = timedelta(minutes=15)
KEY = (1, "cabinet-001")


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def _report(ts: datetime, *kinds: str) -> dict[str, float]:
    return metrics(SPEC, SCHEDULE, key=KEY, ts=ts, step=STEP, kinds=set(kinds))


def test_lit_from_sunset_to_sunrise_as_the_schedule_says() -> None:
    day = date(2026, 3, 10)
    observer = Observer(latitude=LAT, longitude=LON)
    dusk = sunset(observer, day, tzinfo=PARIS)
    dawn = sunrise(observer, day + timedelta(days=1), tzinfo=PARIS)
    full = 20 * 60.0
    for ts, level in [
        (dusk - timedelta(minutes=5), 0.0),
        (dusk + timedelta(minutes=5), 100.0),
        (_at(day, 21, 30), 100.0),
        (_at(day, 23), 40.0),
        (_at(day + timedelta(days=1), 3), 0.0),
        (_at(day + timedelta(days=1), 5, 30), 40.0),
        (dawn - timedelta(minutes=5), 100.0),
        (dawn + timedelta(minutes=5), 0.0),
    ]:
        m = _report(ts)
        assert m["dimming_pct"] == level, ts
        assert m["circuit_1_on"] == m["circuit_2_on"] == (1.0 if level else 0.0)
        if level == 100.0:
            assert m["power_w"] == pytest.approx(full, rel=0.02)
        elif level:
            # A dimmed driver draws a little over its share, within the service's 10 points.
            assert full * 0.4 < m["power_w"] < full * 0.5
        else:
            assert m["power_w"] == 0.0
        assert m["energy_kwh"] == pytest.approx(m["power_w"] * 0.25 / 1000, abs=1e-4)
        assert 220 < m["voltage_v"] < 240


def test_the_labelled_faults() -> None:
    day = date(2026, 3, 10)
    evening, noon, late = _at(day, 21), _at(day, 13), _at(day, 23, 30)
    healthy = _report(evening)["power_w"]
    assert healthy - _report(evening, "lamp_failure")["power_w"] == pytest.approx(60, abs=15)
    stuck = _report(noon, "lighting_daylight")
    assert stuck["circuit_1_on"] == 1.0 and stuck["power_w"] == pytest.approx(1200, rel=0.02)
    lost = _report(late, "lighting_schedule")
    assert lost["dimming_pct"] == 100.0 and _report(late)["dimming_pct"] == 40.0
    assert _report(evening, "lighting_drift")["power_w"] > 1.2 * healthy


def test_a_lost_programme_without_a_schedule_goes_dark_after_midnight() -> None:
    plain = Schedule(latitude=LAT, longitude=LON, zone="Europe/Paris")
    day = date(2026, 3, 11)
    night = metrics(SPEC, plain, key=KEY, ts=_at(day, 2), step=STEP, kinds=set())
    lost = metrics(SPEC, plain, key=KEY, ts=_at(day, 2), step=STEP, kinds={"lighting_schedule"})
    assert night["dimming_pct"] == 100.0 and lost["dimming_pct"] == 0.0


def test_twenty_cabinets_across_the_districts_without_moving_the_other_devices() -> None:
    town = build_town(lighting=20, seed=4)
    cabinets = town.of(Domain.LIGHTING)
    assert len(cabinets) == 20 and cabinets[0].id == "cabinet-001"
    assert len({d.metadata["zone"] for d in cabinets}) >= 3
    assert all(8 <= d.metadata["lamps"] <= 30 for d in cabinets)
    without = build_town(seed=4)
    assert town.devices[: len(without)] == without.devices
