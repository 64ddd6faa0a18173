"""Calendar features in the town's time zone: slot of day, day type (French public holidays)."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

PARIS = ZoneInfo("Europe/Paris")
WORKDAY, SATURDAY, SUNDAY = "workday", "saturday", "sunday"


@lru_cache(maxsize=64)
def _french_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("FR", years=year)


def is_holiday(day: date) -> bool:
    """French public holiday.

    >>> is_holiday(date(2026, 7, 14)), is_holiday(date(2026, 7, 15))
    (True, False)
    """
    return day in _french_holidays(day.year)


def day_type(ts: datetime) -> str:
    """Workday, Saturday, or Sunday (public holidays count as Sundays: buildings close).

    >>> day_type(datetime(2026, 12, 25, 10, tzinfo=PARIS))
    'sunday'
    """
    local = ts.astimezone(PARIS)
    if is_holiday(local.date()) or local.weekday() == 6:
        return SUNDAY
    return SATURDAY if local.weekday() == 5 else WORKDAY


def slot_of_day(ts: datetime, *, slot_minutes: int) -> int:
    """Index of the `slot_minutes` slot of the local day.

    >>> slot_of_day(datetime(2026, 1, 5, 8, 20, tzinfo=PARIS), slot_minutes=15)
    33
    """
    local = ts.astimezone(PARIS)
    return (local.hour * 60 + local.minute) // slot_minutes


def calendar_key(ts: datetime, *, slot_minutes: int) -> tuple[str, int]:
    return day_type(ts), slot_of_day(ts, slot_minutes=slot_minutes)


def is_off_hours(ts: datetime) -> bool:
    """Night (22:00-06:00 local), a Sunday or a public holiday: when buildings should idle."""
    local = ts.astimezone(PARIS)
    return day_type(ts) == SUNDAY or local.hour >= 22 or local.hour < 6
