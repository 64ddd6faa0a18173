"""A report's period: whole local days in the town's time zone, [start, end)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.townzone import day_bounds, today

# A year and a day: a leap year's report fits, and one query never scans more than that.
MAX_DAYS = 366


class PeriodError(ValueError):
    """A period that cannot be reported on (the API answers 422 with this reason)."""


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date  # exclusive
    timezone: str

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise PeriodError("start must be before end")
        if (self.end - self.start).days > MAX_DAYS:
            raise PeriodError(f"a report covers at most {MAX_DAYS} days")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def bounds(self) -> tuple[datetime, datetime]:
        """The period's instants in UTC, from local midnight to local midnight.

        >>> Period(date(2026, 3, 1), date(2026, 4, 1), "Europe/Paris").bounds()[1].isoformat()
        '2026-03-31T22:00:00+00:00'
        """
        return day_bounds(self.start, self.timezone)[0], day_bounds(self.end, self.timezone)[0]

    def previous(self) -> Period:
        """The period of the same length just before (the previous month for a month).

        >>> Period(date(2026, 3, 1), date(2026, 4, 1), "UTC").previous()
        Period(start=datetime.date(2026, 2, 1), end=datetime.date(2026, 3, 1), timezone='UTC')
        >>> Period(date(2026, 3, 10), date(2026, 3, 17), "UTC").previous().start
        datetime.date(2026, 3, 3)
        """
        if self.is_month():
            return month_before(self.start, self.timezone)
        return Period(self.start - (self.end - self.start), self.start, self.timezone)

    def is_month(self) -> bool:
        return self.start.day == 1 and self.end == _next_month(self.start)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month_before(day: date, timezone: str) -> Period:
    """The whole month before the one `day` is in.

    >>> month_before(date(2026, 1, 1), "UTC")
    Period(start=datetime.date(2025, 12, 1), end=datetime.date(2026, 1, 1), timezone='UTC')
    """
    first = day.replace(day=1)
    return Period((first - timedelta(days=1)).replace(day=1), first, timezone)


def last_month(now: datetime, timezone: str) -> Period:
    """The month before today in the town (on the 1st at 00:30 in Paris, 23:30 UTC the day
    before, it is already the previous month that is due)."""
    return month_before(today(timezone, now), timezone)
