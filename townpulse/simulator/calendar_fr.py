"""Local time and the kind of day in the simulated town (France, Europe/Paris)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

TOWN_TZ = ZoneInfo("Europe/Paris")


class DayType(StrEnum):
    """How people behave on a given day; public holidays behave like Sundays."""

    WORKDAY = "workday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


@lru_cache(maxsize=32)
def _french_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FR", years=year))


def is_public_holiday(day: date) -> bool:
    """Whether `day` is a French public holiday.

    >>> is_public_holiday(date(2026, 7, 14)), is_public_holiday(date(2026, 7, 15))
    (True, False)
    """
    return day in _french_holidays(day.year)


def day_type(day: date) -> DayType:
    """Classify a local calendar day.

    >>> day_type(date(2026, 3, 2)), day_type(date(2026, 3, 7)), day_type(date(2026, 12, 25))
    (<DayType.WORKDAY: 'workday'>, <DayType.SATURDAY: 'saturday'>, <DayType.SUNDAY: 'sunday'>)
    """
    if day.weekday() == 6 or is_public_holiday(day):
        return DayType.SUNDAY
    if day.weekday() == 5:
        return DayType.SATURDAY
    return DayType.WORKDAY


def to_local(ts: datetime) -> datetime:
    """Convert an aware timestamp to the town's wall-clock time."""
    if ts.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return ts.astimezone(TOWN_TZ)


def local_hour(local: datetime) -> float:
    """Hour of the day as a float in [0, 24).

    >>> local_hour(datetime(2026, 1, 5, 7, 30, tzinfo=TOWN_TZ))
    7.5
    """
    return local.hour + local.minute / 60.0 + local.second / 3600.0


@lru_cache(maxsize=4096)
def utc_at_local(day: date, hour: float) -> datetime:
    """The UTC instant at which the town's clocks show `hour` on `day`.

    >>> utc_at_local(date(2026, 7, 1), 7.0).isoformat()
    '2026-07-01T05:00:00+00:00'
    """
    # Adding to an aware datetime is wall-clock arithmetic, which is what a local hour means.
    local = datetime(day.year, day.month, day.day, tzinfo=TOWN_TZ) + timedelta(hours=hour)
    return local.astimezone(UTC)
