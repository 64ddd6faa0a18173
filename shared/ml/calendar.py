"""Calendar features in the town's time zone: slot of day, day type (public holidays).

A `TownCalendar` names the town's time zone and the country whose public holidays it keeps
(settings `TOWNPULSE_TIMEZONE`, `TOWNPULSE_HOLIDAYS_COUNTRY`; a French town by default). The
module-level functions use the default calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import holidays

WORKDAY, SATURDAY, SUNDAY = "workday", "saturday", "sunday"
# The country code of a town that keeps no public holidays (or does not want them modelled).
NO_HOLIDAYS = "none"


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=256)
def _holidays(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


@dataclass(frozen=True, slots=True)
class TownCalendar:
    """Local time and public holidays of a town.

    >>> TownCalendar("America/Chicago", "US").day_type(datetime(2026, 7, 4, 18, tzinfo=PARIS))
    'sunday'
    """

    timezone: str = "Europe/Paris"
    country: str = "FR"

    @property
    def tz(self) -> ZoneInfo:
        return _zone(self.timezone)

    def is_holiday(self, day: date) -> bool:
        if self.country.lower() == NO_HOLIDAYS:
            return False
        return day in _holidays(self.country, day.year)

    def day_type(self, ts: datetime) -> str:
        """Workday, Saturday, or Sunday (public holidays count as Sundays: buildings close)."""
        local = ts.astimezone(self.tz)
        if self.is_holiday(local.date()) or local.weekday() == 6:
            return SUNDAY
        return SATURDAY if local.weekday() == 5 else WORKDAY

    def slot_of_day(self, ts: datetime, *, slot_minutes: int) -> int:
        local = ts.astimezone(self.tz)
        return (local.hour * 60 + local.minute) // slot_minutes

    def key(self, ts: datetime, *, slot_minutes: int) -> tuple[str, int]:
        return self.day_type(ts), self.slot_of_day(ts, slot_minutes=slot_minutes)

    def is_off_hours(self, ts: datetime) -> bool:
        """Night (22:00-06:00 local), a Sunday or a public holiday: when buildings should idle."""
        local = ts.astimezone(self.tz)
        return self.day_type(ts) == SUNDAY or local.hour >= 22 or local.hour < 6


TOWN = TownCalendar()
PARIS = TOWN.tz


def is_holiday(day: date) -> bool:
    """French public holiday.

    >>> is_holiday(date(2026, 7, 14)), is_holiday(date(2026, 7, 15))
    (True, False)
    """
    return TOWN.is_holiday(day)


def day_type(ts: datetime) -> str:
    """Workday, Saturday, or Sunday in the default calendar.

    >>> day_type(datetime(2026, 12, 25, 10, tzinfo=PARIS))
    'sunday'
    """
    return TOWN.day_type(ts)


def slot_of_day(ts: datetime, *, slot_minutes: int) -> int:
    """Index of the `slot_minutes` slot of the local day.

    >>> slot_of_day(datetime(2026, 1, 5, 8, 20, tzinfo=PARIS), slot_minutes=15)
    33
    """
    return TOWN.slot_of_day(ts, slot_minutes=slot_minutes)


def calendar_key(ts: datetime, *, slot_minutes: int) -> tuple[str, int]:
    return TOWN.key(ts, slot_minutes=slot_minutes)


def is_off_hours(ts: datetime) -> bool:
    return TOWN.is_off_hours(ts)
