"""Calendar features in the town's time zone: slot of day, day type (public holidays).

A `TownCalendar` names the town's time zone and the country whose public holidays it keeps
(settings `TOWNPULSE_TIMEZONE`, `TOWNPULSE_HOLIDAYS_COUNTRY`; a French town by default): any
country the `holidays` package knows, optionally with one of its subdivisions after a hyphen
(`FR-57`, Moselle's extra holidays; `DE-BY`, Bavaria). The module-level functions use the
default calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import holidays

from shared.townholidays import NO_HOLIDAYS, holiday_region

WORKDAY, SATURDAY, SUNDAY = "workday", "saturday", "sunday"


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=256)
def _holidays(code: str, year: int) -> holidays.HolidayBase:
    country, subdiv = holiday_region(code)
    return holidays.country_holidays(country, subdiv=subdiv, years=year)


# Every time-zone offset in use since 1980 is a whole number of minutes, so every second of a UTC
# minute has the same local date, hour and minute: one conversion and holiday look-up serves every
# reading of that minute, from every device (the calendar was 20 % of the energy service's
# samples at 3,000 msg/s, docs/performance.md).
_WHOLE_MINUTE_OFFSETS_SINCE = datetime(1980, 1, 1, tzinfo=UTC).timestamp()


@lru_cache(maxsize=16_384)
def _minute_parts(timezone: str, country: str, minute: int) -> tuple[str, int]:
    # Keyed by the calendar's fields: strings hash once, a dataclass on every call.
    return TownCalendar(timezone, country).local_parts(datetime.fromtimestamp(minute * 60, UTC))


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

    def preload(self) -> None:
        """Load this year's public holidays now: the first load imports every country's module
        (about 55 ms and 8 MB), which a service should pay when it starts, not on its first
        reading, when every other service is busy too."""
        self.is_holiday(datetime.now(self.tz).date())

    def local_parts(self, ts: datetime) -> tuple[str, int]:
        """Day type and minute of the local day, computed (`_parts` is the cached way in)."""
        local = ts.astimezone(self.tz)
        if self.is_holiday(local.date()) or local.weekday() == 6:
            kind = SUNDAY
        else:
            kind = SATURDAY if local.weekday() == 5 else WORKDAY
        return kind, local.hour * 60 + local.minute

    def _parts(self, ts: datetime) -> tuple[str, int]:
        seconds = ts.timestamp()
        if seconds >= _WHOLE_MINUTE_OFFSETS_SINCE:
            return _minute_parts(self.timezone, self.country, int(seconds // 60))
        return self.local_parts(ts)

    def day_type(self, ts: datetime) -> str:
        """Workday, Saturday, or Sunday (public holidays count as Sundays: buildings close)."""
        return self._parts(ts)[0]

    def slot_of_day(self, ts: datetime, *, slot_minutes: int) -> int:
        return self._parts(ts)[1] // slot_minutes

    def key(self, ts: datetime, *, slot_minutes: int) -> tuple[str, int]:
        kind, minute = self._parts(ts)
        return kind, minute // slot_minutes

    def is_off_hours(self, ts: datetime) -> bool:
        """Night (22:00-06:00 local), a Sunday or a public holiday: when buildings should idle."""
        kind, minute = self._parts(ts)
        return kind == SUNDAY or minute >= 22 * 60 or minute < 6 * 60


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
