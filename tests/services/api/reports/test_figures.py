"""The report's fair comparison: the recorded plans against the town's fixed schedule over the
same weeks (each figure worked out by hand here)."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.reports.figures import fixed_comparison

pytestmark = pytest.mark.unit


def day(
    km: float, every_km: float, *, v: float = 1.3, r: int = 3, bins: int = 20
) -> dict[str, Any]:
    return {
        "km": km,
        "every_bin_km": every_km,
        "bins": bins,
        "every_bins": 150,
        "fixed_visits_per_week": v,
        "rounds_per_week": r,
    }


def test_four_whole_weeks_of_monday_wednesday_friday() -> None:
    plans = [day(20.0, 60.0) if i % 2 else day(24.0, 64.0) for i in range(12)]
    c = fixed_comparison(plans)
    assert c["weeks"] == pytest.approx(4.0)
    assert c["planned_km"] == pytest.approx(6 * 20 + 6 * 24)
    assert c["every_bin_tour_km"] == pytest.approx(62.0)
    # Mean tour of every bin x visits a week x weeks.
    assert c["fixed_km"] == pytest.approx(62.0 * 1.3 * 4)
    assert c["saved_km"] == pytest.approx(62.0 * 1.3 * 4 - 264)
    assert c["fixed_visits_per_week"] == pytest.approx(1.3)
    assert c["fixed_visits"] == pytest.approx(150 * 1.3 * 4)
    assert c["planned_visits"] == 240


def test_missing_days_count_on_neither_side() -> None:
    # Two rounds of a week of three recorded (the service was down on the third).
    c = fixed_comparison([day(20.0, 60.0), day(20.0, 60.0)])
    assert c["weeks"] == pytest.approx(2 / 3)
    assert c["fixed_km"] == pytest.approx(60.0 * 1.3 * 2 / 3)
    assert c["planned_km"] == pytest.approx(40.0)


def test_a_schedule_changed_mid_period() -> None:
    # A week of daily rounds against a C2 schedule, then a week of three rounds against C1.
    plans = [day(10.0, 50.0, v=2.0, r=5)] * 5 + [day(15.0, 50.0, v=1.0, r=3)] * 3
    c = fixed_comparison(plans)
    assert c["weeks"] == pytest.approx(2.0)
    assert c["fixed_km"] == pytest.approx(50.0 * 2.0 + 50.0 * 1.0)
    assert c["fixed_visits_per_week"] == pytest.approx(1.5)
    assert c["saved_km"] == pytest.approx(150.0 - 95.0)


def test_more_km_than_the_fixed_schedule_is_a_negative_saving() -> None:
    c = fixed_comparison([day(40.0, 60.0, v=1.0, r=1)])
    assert c["saved_km"] == pytest.approx(20.0)
    c = fixed_comparison([day(40.0, 60.0, v=1.0, r=5)] * 5)
    assert c["saved_km"] == pytest.approx(60.0 - 200.0)


def test_no_plan_no_figure() -> None:
    c = fixed_comparison([])
    assert c == {
        "weeks": 0.0,
        "planned_km": 0.0,
        "every_bin_tour_km": 0.0,
        "fixed_visits_per_week": 0.0,
        "fixed_km": 0.0,
        "saved_km": 0.0,
        "planned_visits": 0.0,
        "fixed_visits": 0.0,
    }
