"""The published schedule of a night: the sun's times and the council's hours, whose hours add
up to the night (figures computed here from the windows, not by the code under test)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from shared.night import Town

pytestmark = pytest.mark.unit

# Toulouse in December: sunset before 18:00, sunrise after 08:00, so both windows fall inside.
TOWN = Town(
    latitude=43.6045,
    longitude=1.4440,
    zone="Europe/Paris",
    off=(time(23, 30), time(5)),
    dim=(time(21), time(23, 30)),
    dim_pct=40.0,
)


def test_a_nights_schedule_gives_the_councils_hours_and_adds_up_to_the_night() -> None:
    plan = TOWN.plan(date(2026, 12, 8))
    assert plan is not None
    row = TOWN.schedule(plan)
    assert (row["off_from"], row["off_to"], row["dim_from"], row["dim_to"]) == (
        "23:30",
        "05:00",
        "21:00",
        "23:30",
    )
    assert row["dim_pct"] == 40.0
    night_h = (plan.dawn - plan.dusk) / timedelta(hours=1)
    # 23:30 to 05:00 off, 21:00 to 23:30 dimmed, the rest of the night at full power.
    assert row["off_h"] == pytest.approx(5.5, abs=0.09)
    assert row["dim_h"] == pytest.approx(2.5, abs=0.09)
    assert row["full_h"] == pytest.approx(night_h - 8.0, abs=0.09)
    sunset, sunrise = row["sunset"], row["sunrise"]
    assert isinstance(sunset, datetime) and isinstance(sunrise, datetime)
    assert sunset.microsecond == sunrise.microsecond == 0
    assert str(sunset.tzinfo) == "Europe/Paris"
    assert time(16, 30) < sunset.time() < time(18) and time(8) < sunrise.time() < time(8, 45)


def test_a_town_without_a_schedule_publishes_no_hours() -> None:
    bare = Town(latitude=43.6045, longitude=1.4440, zone="Europe/Paris")
    plan = bare.plan(date(2026, 12, 8))
    assert plan is not None
    row = bare.schedule(plan)
    assert (row["off_from"], row["dim_from"], row["dim_pct"], row["off_h"]) == (None,) * 3 + (0,)


@pytest.mark.parametrize(
    ("start", "hours", "nights"),
    [
        # At noon: tonight only, within a day.
        (datetime(2026, 12, 8, 11, tzinfo=UTC), 24, ["2026-12-08"]),
        # At 2 in the morning: the night still running (the evening before) comes first.
        (datetime(2026, 12, 8, 1, tzinfo=UTC), 12, ["2026-12-07"]),
        (datetime(2026, 12, 8, 1, tzinfo=UTC), 60, ["2026-12-07", "2026-12-08", "2026-12-09"]),
        # Daylight only: no night overlaps.
        (datetime(2026, 12, 8, 10, tzinfo=UTC), 2, []),
    ],
)
def test_nights_are_those_overlapping_the_period(
    start: datetime, hours: int, nights: list[str]
) -> None:
    found = TOWN.nights(start, start + timedelta(hours=hours))
    assert [str(n.day) for n in found] == nights
