"""Daily, weekly and holiday shapes; bins filling and being collected."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from statistics import mean

import pytest

from tests.townpulse.simulator.helpers import (
    DAILY_BIN,
    HOMES,
    OFFICE,
    ROAD,
    SCHOOL,
    SMALL_TOWN,
    WEEKLY_BIN,
    Series,
    series,
    values,
)
from townpulse.simulator import waste
from townpulse.simulator.calendar_fr import DayType, day_type, utc_at_local
from townpulse.simulator.readings import iter_readings
from townpulse.simulator.town import BinSpec, Device

pytestmark = pytest.mark.unit

MONDAY = date(2026, 1, 12)
STEP = timedelta(minutes=15)


@pytest.fixture(scope="module")
def two_weeks() -> Series:
    start = utc_at_local(MONDAY, 0.0)
    return series(SMALL_TOWN, start, start + timedelta(days=14))


def _local(day: date, start_h: float, end_h: float) -> tuple[datetime, datetime]:
    return utc_at_local(day, start_h), utc_at_local(day, end_h)


def _daily(data: Series, device_id: str, metric: str, day: date) -> float:
    return sum(values(data, device_id, metric, *_local(day, 0.0, 24.0)))


def test_calendar_treats_holidays_like_sundays() -> None:
    assert day_type(date(2026, 7, 14)) is DayType.SUNDAY  # Bastille Day, a Tuesday
    assert day_type(date(2026, 5, 1)) is DayType.SUNDAY
    assert day_type(date(2026, 7, 15)) is DayType.WORKDAY
    assert day_type(date(2026, 7, 18)) is DayType.SATURDAY


@pytest.mark.parametrize("device", [OFFICE, SCHOOL], ids=lambda d: d.id)
def test_workplaces_use_less_at_night_than_in_the_day(two_weeks: Series, device: Device) -> None:
    for offset in range(5):
        day = MONDAY + timedelta(days=offset)
        night = mean(values(two_weeks, device.id, "energy_kwh", *_local(day, 1.0, 5.0)))
        working = mean(values(two_weeks, device.id, "energy_kwh", *_local(day, 9.0, 11.0)))
        assert working > 2 * night, day


def test_homes_peak_in_the_evening(two_weeks: Series) -> None:
    day = MONDAY + timedelta(days=1)
    night = mean(values(two_weeks, HOMES.id, "energy_kwh", *_local(day, 2.0, 4.0)))
    evening = mean(values(two_weeks, HOMES.id, "energy_kwh", *_local(day, 19.0, 21.0)))
    # Electric heating runs all night in January, which flattens the curve.
    assert evening > night * 1.2


def test_workplaces_use_less_at_weekends(two_weeks: Series) -> None:
    for device in (OFFICE, SCHOOL):
        weekdays = [
            _daily(two_weeks, device.id, "energy_kwh", MONDAY + timedelta(days=i)) for i in range(5)
        ]
        weekend = [
            _daily(two_weeks, device.id, "energy_kwh", MONDAY + timedelta(days=i)) for i in (5, 6)
        ]
        assert max(weekend) < 0.7 * min(weekdays), device.id


def test_bastille_day_looks_like_a_sunday() -> None:
    # 2026-07-14 is a Tuesday; compare with the Tuesday before and the Sunday before.
    start = utc_at_local(date(2026, 7, 5), 0.0)
    data = series(SMALL_TOWN, start, start + timedelta(days=10))
    for device_id, metric in ((OFFICE.id, "energy_kwh"), (ROAD.id, "vehicles")):
        tuesday = _daily(data, device_id, metric, date(2026, 7, 7))
        sunday = _daily(data, device_id, metric, date(2026, 7, 12))
        holiday = _daily(data, device_id, metric, date(2026, 7, 14))
        assert holiday < 0.8 * tuesday, device_id
        assert abs(holiday - sunday) < 0.15 * sunday, device_id


def test_winter_heating_raises_consumption() -> None:
    winter = utc_at_local(date(2026, 1, 13), 0.0)
    spring = utc_at_local(date(2026, 5, 12), 0.0)
    cold = sum(
        values(
            series(SMALL_TOWN, winter, winter + timedelta(days=1)),
            HOMES.id,
            "energy_kwh",
            winter,
            winter + timedelta(days=1),
        )
    )
    mild = sum(
        values(
            series(SMALL_TOWN, spring, spring + timedelta(days=1)),
            HOMES.id,
            "energy_kwh",
            spring,
            spring + timedelta(days=1),
        )
    )
    assert cold > 1.3 * mild


def test_traffic_has_rush_hours_and_quiet_nights(two_weeks: Series) -> None:
    for offset in range(5):
        day = MONDAY + timedelta(days=offset)
        night = mean(values(two_weeks, ROAD.id, "vehicles", *_local(day, 2.0, 4.0)))
        morning = mean(values(two_weeks, ROAD.id, "vehicles", *_local(day, 7.5, 8.5)))
        evening = mean(values(two_weeks, ROAD.id, "vehicles", *_local(day, 17.0, 18.5)))
        midday = mean(values(two_weeks, ROAD.id, "vehicles", *_local(day, 10.0, 11.0)))
        assert morning > 5 * night and evening > 5 * night
        assert morning > midday and evening > midday
        rush_speed = mean(values(two_weeks, ROAD.id, "speed_kmh", *_local(day, 7.5, 8.5)))
        night_speed = mean(values(two_weeks, ROAD.id, "speed_kmh", *_local(day, 2.0, 4.0)))
        assert rush_speed < night_speed - 5


def test_weekend_traffic_has_no_morning_rush(two_weeks: Series) -> None:
    workday_rush = mean(values(two_weeks, ROAD.id, "vehicles", *_local(MONDAY, 7.5, 8.5)))
    for offset in (5, 6):
        day = MONDAY + timedelta(days=offset)
        rush = mean(values(two_weeks, ROAD.id, "vehicles", *_local(day, 7.5, 8.5)))
        assert rush < 0.5 * workday_rush


def _collection_times(spec: BinSpec, start: datetime, end: datetime) -> set[datetime]:
    t, found = start, set()
    while t < end:
        if waste.is_collected(spec, ts=t, step=STEP):
            found.add(t)
        t += STEP
    return found


@pytest.mark.parametrize("device", [DAILY_BIN, WEEKLY_BIN], ids=lambda d: d.id)
def test_bins_fill_up_and_drop_only_when_collected(two_weeks: Series, device: Device) -> None:
    assert isinstance(device.spec, BinSpec)
    start = utc_at_local(MONDAY, 0.0)
    end = start + timedelta(days=14)
    stamps = sorted(ts for dev, ts in two_weeks if dev == device.id)
    fills = [two_weeks[device.id, ts]["fill_pct"] for ts in stamps]
    drops = {stamps[i] for i in range(1, len(fills)) if fills[i] < fills[i - 1] - 20}
    collections = _collection_times(device.spec, start, end)
    assert drops == collections
    expected = 12 if device is DAILY_BIN else 2  # Mon-Sat twice, or two Tuesdays
    assert len(collections) == expected
    for ts in collections:
        before = two_weeks[device.id, ts - STEP]["fill_pct"]
        assert before > 45 and two_weeks[device.id, ts]["fill_pct"] < 8
    # Net rise between the Wednesday and Thursday rounds (neither bin is collected in between).
    wednesday = MONDAY + timedelta(days=2)
    rise = values(two_weeks, device.id, "fill_pct", *_local(wednesday, 8.0, 24.0 + 5.5))
    assert rise[-1] > rise[0] + 5


def test_fast_bins_fill_faster_than_slow_ones(two_weeks: Series) -> None:
    wednesday = MONDAY + timedelta(days=2)
    window = _local(wednesday, 8.0, 24.0 + 5.5)
    fast = values(two_weeks, DAILY_BIN.id, "fill_pct", *window)
    slow = values(two_weeks, WEEKLY_BIN.id, "fill_pct", *window)
    assert (fast[-1] - fast[0]) > 2.5 * (slow[-1] - slow[0]) > 0


def test_no_collection_on_public_holidays() -> None:
    spec = WEEKLY_BIN.spec  # collected on Tuesdays at 07:00
    assert isinstance(spec, BinSpec)
    assert waste.is_collected(spec, ts=utc_at_local(date(2026, 7, 7), 7.0), step=STEP)
    assert not waste.is_collected(spec, ts=utc_at_local(date(2026, 7, 14), 7.0), step=STEP)


def test_bin_temperature_follows_the_weather(two_weeks: Series) -> None:
    temps = values(two_weeks, DAILY_BIN.id, "temperature_c", *_local(MONDAY, 0.0, 24.0 * 14))
    assert -15 < min(temps) < max(temps) < 30
    summer = utc_at_local(date(2026, 7, 20), 0.0)
    hot = values(
        series(SMALL_TOWN, summer, summer + timedelta(days=1)),
        DAILY_BIN.id,
        "temperature_c",
        summer,
        summer + timedelta(days=1),
    )
    assert mean(hot) > mean(temps) + 8


def test_glitches_are_zero_or_full_reads() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    clean = {
        (r.device.id, r.ts): r.metrics["fill_pct"]
        for r in iter_readings(
            SMALL_TOWN, start=start, end=start + timedelta(days=3), glitch_rate=0.0
        )
        if "fill_pct" in r.metrics
    }
    glitchy = {
        (r.device.id, r.ts): r.metrics["fill_pct"]
        for r in iter_readings(
            SMALL_TOWN, start=start, end=start + timedelta(days=3), glitch_rate=0.05
        )
        if "fill_pct" in r.metrics
    }
    changed = {k: v for k, v in glitchy.items() if v != clean[k]}
    assert 0.02 * len(clean) < len(changed) < 0.08 * len(clean)
    assert set(changed.values()) <= {0.0, 100.0}
