"""The calendar's per-minute cache answers exactly what converting each timestamp answers."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.ml.calendar import TownCalendar

pytestmark = pytest.mark.unit

# DST turns at 01:00 UTC (Paris), local 02:00 (Chicago), by 30 minutes (Lord Howe); offsets of
# +5:30 and +5:45; a holiday-free town.
CALENDARS = [
    TownCalendar("Europe/Paris", "FR"),
    TownCalendar("America/Chicago", "US"),
    TownCalendar("Australia/Lord_Howe", "AU"),
    TownCalendar("Asia/Kolkata", "none"),
    TownCalendar("Asia/Kathmandu", "NP"),
    TownCalendar("Europe/London", "none"),
]


def _instants(rng: random.Random) -> list[datetime]:
    # Around every DST change and every midnight of 2026 in any of these zones, plus random ones,
    # at random seconds and microseconds within their minute.
    out = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for hours in range(0, 366 * 24, 7):
        base = start + timedelta(hours=hours)
        out.append(base + timedelta(seconds=rng.randrange(60), microseconds=rng.randrange(10**6)))
    out += [datetime(1979, 12, 31, 23, 59, 30, tzinfo=UTC), datetime(1900, 6, 1, 12, tzinfo=UTC)]
    return out


@pytest.mark.parametrize("calendar", CALENDARS, ids=lambda c: c.timezone)
def test_cached_parts_equal_a_fresh_conversion(calendar: TownCalendar) -> None:
    rng = random.Random(7)
    for ts in _instants(rng):
        kind, minute = calendar.local_parts(ts)
        assert calendar.day_type(ts) == kind, ts
        assert calendar.key(ts, slot_minutes=15) == (kind, minute // 15), ts
        assert calendar.slot_of_day(ts, slot_minutes=60) == minute // 60, ts
        local = ts.astimezone(calendar.tz)
        assert (local.hour, local.minute) == divmod(minute, 60), ts
        off = kind == "sunday" or local.hour >= 22 or local.hour < 6
        assert calendar.is_off_hours(ts) == off, ts


def test_every_second_of_a_minute_shares_its_answer_around_a_dst_change() -> None:
    paris = TownCalendar("Europe/Paris", "FR")
    turn = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 02:00 local becomes 03:00
    assert paris.key(turn - timedelta(seconds=1), slot_minutes=60) == ("sunday", 1)
    assert paris.key(turn, slot_minutes=60) == ("sunday", 3)
    assert paris.key(turn + timedelta(seconds=59), slot_minutes=60) == ("sunday", 3)


def test_preload_loads_this_years_holidays_before_the_first_reading() -> None:
    from shared.ml import calendar as module

    town = TownCalendar("Pacific/Auckland", "NZ")
    module._holidays.cache_clear()
    town.preload()
    year = datetime.now(town.tz).year
    loaded = module._holidays.cache_info().currsize
    town.is_holiday(date(year, 2, 6))  # Waitangi Day
    info = module._holidays.cache_info()
    assert (loaded, info.currsize, info.hits) == (1, 1, 1)
    TownCalendar("Europe/Paris", "none").preload()  # a town without holidays loads none
    assert module._holidays.cache_info().currsize == 1
