"""Unit tests for `bench.waste_time_to_full`: when a bin is emptied, and its fill cycles."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from bench.waste_time_to_full import due_at_round, simulate
from townpulse.simulator.calendar_fr import is_public_holiday, to_local, utc_at_local
from townpulse.simulator.events import STEP
from townpulse.simulator.town import BinSpec, Zone, build_town

pytestmark = pytest.mark.unit

MONDAY_ROUND = BinSpec(Zone.RESIDENTIAL, "general", 240, 10.0, (0,), 6.0)


def test_a_bin_is_emptied_at_its_round_only_once_it_is_full() -> None:
    at_round = utc_at_local(date(2026, 3, 2), 6.0)  # a Monday, the bin's round at 06:00
    assert due_at_round(MONDAY_ROUND, fill=85.0, ts=at_round, full_pct=80.0)
    # The round passes a bin that is not full yet (the fixed schedule would empty it).
    assert not due_at_round(MONDAY_ROUND, fill=60.0, ts=at_round, full_pct=80.0)
    # A full bin waits for its round: not an hour later, not on another weekday.
    assert not due_at_round(MONDAY_ROUND, fill=95.0, ts=at_round + STEP * 4, full_pct=80.0)
    tuesday = utc_at_local(date(2026, 3, 3), 6.0)
    assert not due_at_round(MONDAY_ROUND, fill=95.0, ts=tuesday, full_pct=80.0)
    # No round on a public holiday (Easter Monday).
    easter_monday = date(2026, 4, 6)
    assert is_public_holiday(easter_monday)
    holiday = utc_at_local(easter_monday, 6.0)
    assert not due_at_round(MONDAY_ROUND, fill=95.0, ts=holiday, full_pct=80.0)


def test_every_cycle_ends_with_a_crossing_and_restarts_at_a_round_of_the_schedule() -> None:
    town = build_town(energy=0, waste=3, traffic=0, seed=7)
    # Bins filling in 3 days, so three weeks hold several cycles each.
    fast = []
    for d in town:
        assert isinstance(d.spec, BinSpec)
        fast.append(dataclasses.replace(d, spec=dataclasses.replace(d.spec, fill_days=3.0)))
    town = dataclasses.replace(town, devices=tuple(fast))
    start = datetime(2026, 3, 2, tzinfo=UTC)
    runs = simulate(town, start=start, end=start + timedelta(weeks=3), full_pct=80.0)
    assert set(runs) == {d.id for d in town}
    for run in runs.values():
        assert len(run.cycles) >= 3
        for (_, crossed), (next_start, _) in zip(run.cycles, run.cycles[1:], strict=False):
            # Emptied only after the true level crossed the threshold...
            assert crossed is not None
            assert crossed <= next_start
            # ... and at a round of the bin's own schedule.
            local = to_local(next_start)
            assert local.weekday() in run.spec.collection_weekdays
            assert utc_at_local(local.date(), run.spec.collection_hour) == next_start
        # The sensor's readings drop at each emptying: the level is near empty after a round.
        by_ts = dict(run.readings)
        for next_start, _ in run.cycles[1:]:
            assert by_ts[next_start] < 20.0 or by_ts[next_start] == 100.0  # or a glitch
