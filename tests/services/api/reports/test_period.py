"""A report's period: the town's days, last month as the town counts it, bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.api.reports.period import MAX_DAYS, Period, PeriodError, last_month

pytestmark = pytest.mark.unit


def test_last_month_is_the_towns_on_the_first_just_after_midnight() -> None:
    # 1 December 00:30 in Paris is still 30 November in UTC: November is already due.
    now = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert last_month(now, "Europe/Paris") == Period(
        date(2026, 11, 1), date(2026, 12, 1), "Europe/Paris"
    )
    assert last_month(now, "UTC").start == date(2026, 10, 1)


def test_january_reports_december_of_the_year_before() -> None:
    period = last_month(datetime(2027, 1, 1, 6, tzinfo=UTC), "Europe/Paris")
    assert (period.start, period.end) == (date(2026, 12, 1), date(2027, 1, 1))
    assert period.is_month() and period.previous().start == date(2026, 11, 1)


def test_bounds_follow_summer_time() -> None:
    start, end = Period(date(2026, 3, 1), date(2026, 4, 1), "Europe/Paris").bounds()
    assert start == datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert end == datetime(2026, 3, 31, 22, tzinfo=UTC)  # an hour shorter: summer time began


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2026, 3, 1), date(2026, 3, 1)),
        (date(2026, 3, 2), date(2026, 3, 1)),
        (date(2025, 1, 1), date(2026, 1, 3)),
    ],
)
def test_empty_reversed_or_too_long_periods_are_refused(start: date, end: date) -> None:
    with pytest.raises(PeriodError):
        Period(start, end, "UTC")


def test_a_leap_year_fits() -> None:
    assert Period(date(2028, 1, 1), date(2029, 1, 1), "UTC").days == MAX_DAYS
