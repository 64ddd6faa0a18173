"""When the service records a day's plan (which day, caught up after a late start, once a day),
and which plans are the town's own (recorded) rather than what-ifs."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.waste import planning
from services.waste.planning import DayPlan, PlanError, ask_for, due_day, next_wake
from services.waste.settings import WasteSettings
from shared.factors import load_factors

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
MWF = [0, 2, 4]
MONDAY = date(2026, 3, 9)


def at(day: date, hour: float, tz: ZoneInfo = PARIS) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(hours=hour)


def settings(**kw: Any) -> WasteSettings:
    base: dict[str, Any] = {"dev_mode": True, "depot": "45.9,6.1", "round_weekdays": MWF}
    return WasteSettings(**(base | kw))


@pytest.mark.parametrize(
    ("now", "hour", "expected"),
    [
        (at(MONDAY, 6.5), 6.0, MONDAY),  # a round day, after its hour
        (at(MONDAY, 23.9), 6.0, MONDAY),  # late the same evening: caught up
        (at(MONDAY, 5.9), 6.0, None),  # before its hour
        (at(MONDAY + timedelta(days=1), 9), 6.0, None),  # Tuesday: no round
        (at(MONDAY + timedelta(days=2), 6.25), 6.25, MONDAY + timedelta(days=2)),  # Wednesday
    ],
)
def test_which_day_is_due(now: datetime, hour: float, expected: date | None) -> None:
    assert due_day(now, weekdays=MWF, hour=hour, tz=PARIS) == expected


def test_the_day_is_the_towns_not_utcs() -> None:
    # 23:30 UTC on Sunday is 00:30 on Monday in Paris (winter): Monday, after a midnight round.
    sunday_late = datetime(2026, 3, 8, 23, 30, tzinfo=UTC)
    assert due_day(sunday_late, weekdays=MWF, hour=0.0, tz=PARIS) == MONDAY
    assert due_day(sunday_late, weekdays=MWF, hour=1.0, tz=PARIS) is None


def test_summer_time_day() -> None:
    # 29 March 2026 (a Sunday) loses an hour in Paris: the 06:00 round is 04:00 UTC.
    sunday = date(2026, 3, 29)
    before, after = datetime(2026, 3, 29, 3, 59, tzinfo=UTC), datetime(2026, 3, 29, 4, tzinfo=UTC)
    assert due_day(before, weekdays=[6], hour=6, tz=PARIS) is None
    assert due_day(after, weekdays=[6], hour=6, tz=PARIS) == sunday


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(MONDAY, 5), at(MONDAY, 6)),  # today's round hour, still ahead
        (at(MONDAY, 6), at(MONDAY + timedelta(days=2), 6)),  # just passed: Wednesday's
        (at(MONDAY + timedelta(days=4), 7), at(MONDAY + timedelta(days=7), 6)),  # Friday: Monday
    ],
)
def test_the_next_wake_is_the_next_round_hour(now: datetime, expected: datetime) -> None:
    assert next_wake(now, weekdays=MWF, hour=6.0, tz=PARIS) == expected


def _plan(ask: planning.PlanAsk, *, unserved: int = 0) -> DayPlan:
    return DayPlan(
        ask, bins=3, every_bins=9, unserved=unserved, km=1.0, every_bin_km=4.0, answer={}
    )


def test_only_the_towns_own_plan_of_a_round_day_is_recorded() -> None:
    s = settings(round_trucks=2)
    own = ask_for(s, day=MONDAY)
    assert own.vehicles == 2 and own.depot.lat == 45.9 and own.shift.hours == s.shift_h
    assert planning.is_town_plan(_plan(own), s, today=MONDAY)
    what_ifs = [
        ask_for(s, day=MONDAY, depot="45.8,6.0"),
        ask_for(s, day=MONDAY, vehicles=3),
        ask_for(s, day=MONDAY, shift_h=3.0),
        ask_for(s, day=MONDAY, capacity=10),
        ask_for(s, day=MONDAY + timedelta(days=2)),  # another day than today
    ]
    assert not any(planning.is_town_plan(_plan(a), s, today=MONDAY) for a in what_ifs)
    # Bins the town's trucks cannot take: not a plan the town can run.
    assert not planning.is_town_plan(_plan(own, unserved=1), s, today=MONDAY)
    tuesday = MONDAY + timedelta(days=1)
    assert not planning.is_town_plan(_plan(ask_for(s, day=tuesday)), s, today=tuesday)


def test_a_plan_needs_a_depot() -> None:
    with pytest.raises(PlanError, match="no default depot"):
        ask_for(settings(depot=None), day=MONDAY)
    with pytest.raises(PlanError, match="out of range"):
        ask_for(settings(), day=MONDAY, depot="95,6")


def test_the_co2_factor_is_the_shared_tables() -> None:
    s = settings(factors={"refuse_truck_fuel_l_per_km": 0.5})
    shared = load_factors(s.factors)["refuse_truck_kg_co2e_per_km"]
    assert shared.overridden
    assert shared.value == pytest.approx(0.5 * load_factors()["diesel_kg_co2e_per_l"].value)


class _Stop(Exception):
    pass


def _run_loop(
    monkeypatch: pytest.MonkeyPatch, s: WasteSettings, times: list[datetime], outcome: str
) -> tuple[list[datetime], list[float]]:
    """Run `daily_plans` over the instants `times` (one per wake); what it recorded, and the
    sleeps it asked for."""
    calls: list[datetime] = []
    sleeps: list[float] = []
    clock = iter(t for t in times for _ in range(2))  # the loop reads the clock twice a turn

    async def record_due_plan(pool: Any, settings: WasteSettings, *, now: datetime) -> str:
        calls.append(now)
        return outcome

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == len(times):
            raise _Stop

    monkeypatch.setattr(planning, "record_due_plan", record_due_plan)
    monkeypatch.setattr(asyncio, "sleep", sleep)
    with pytest.raises(_Stop):
        asyncio.run(planning.daily_plans(None, s, clock=lambda: next(clock)))  # type: ignore[arg-type]
    return calls, sleeps


def test_the_loop_catches_up_at_start_then_sleeps_until_the_next_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = at(MONDAY, 9)  # started three hours after Monday's round hour
    calls, sleeps = _run_loop(monkeypatch, settings(), [start], "saved")
    assert calls == [start]  # looked at once, at start
    assert sleeps == [planning.RECHECK_S]  # Wednesday is far: it looks again within the hour


def test_a_day_left_unrecorded_is_not_retried_all_day(monkeypatch: pytest.MonkeyPatch) -> None:
    times = [at(MONDAY, 9), at(MONDAY, 10), at(MONDAY, 11)]
    calls, _ = _run_loop(monkeypatch, settings(), times, "unserved")
    assert calls == [times[0]]


def test_no_depot_no_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    calls, _ = _run_loop(monkeypatch, settings(depot=None), [at(MONDAY, 9)], "saved")
    assert calls == []
