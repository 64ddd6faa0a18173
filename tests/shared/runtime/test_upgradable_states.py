"""Checkpoints written before durations, cadences and warm-ups load, and go on working.

Pure logic: a state as an earlier version pickled it (its `period` and `last_ts`, counts of
readings in its episode trackers, no cadence, no warm-up) is rebuilt and fed more readings.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.energy.domain.meter import EnergyProcessor
from services.traffic.domain.counter import OPEN_AFTER, TrafficProcessor
from services.waste.domain.bin import EPISODE_DURATIONS, WasteProcessor
from shared.schemas import Reading

pytestmark = pytest.mark.unit

T0 = datetime(2026, 2, 2, tzinfo=UTC)
Q = timedelta(minutes=15)


def as_saved_before(state: Any, *, period: timedelta) -> Any:
    """`state` pickled as the previous version would have: no cadence, no warm-up, the smallest
    gap seen as `period`, trackers counting readings."""
    old = state.__dict__.copy()
    last_ts = old.pop("cadence").last_ts
    del old["warm"]
    old.update(period=period, last_ts=last_ts)
    for tracker in old.get("trackers", {}).values():
        tracker.__dict__.update(open_after=2, close_after=3)
    state.__dict__.clear()
    state.__dict__.update(old)
    return pickle.loads(pickle.dumps(state))


def feed(proc: Any, state: Any, metric: str, n: int, start: datetime) -> None:
    for i in range(n):
        ts = start + i * Q
        proc.process(
            state, device_id="d", readings=[Reading(ts=ts, metric=metric, value=10.0 + i % 3)]
        )


@pytest.mark.parametrize(
    ("proc", "metric"),
    [
        (EnergyProcessor(), "energy_kwh"),
        (WasteProcessor(), "fill_pct"),
        (TrafficProcessor(), "vehicles"),
    ],
    ids=["energy", "waste", "traffic"],
)
def test_an_older_checkpoint_loads_with_its_learnt_period_and_alerts_at_once(
    proc: Any, metric: str
) -> None:
    state = proc.new_state("d")
    feed(proc, state, metric, 8, T0)
    old = as_saved_before(state, period=Q)
    # Its period becomes its cadence, it resumes where it was, and its model, which learnt for
    # as long as it ran, is not sent back to warming up.
    assert old.cadence.interval == Q and old.cadence.last_ts == T0 + 7 * Q
    assert old.warm.trusted and proc.learning_until(old) is None
    feed(proc, old, metric, 4, T0 + 8 * Q)
    assert old.cadence.last_ts == T0 + 11 * Q


def test_restored_trackers_take_the_processors_durations() -> None:
    waste = as_saved_before(WasteProcessor().new_state("b"), period=Q)
    assert {
        k: (t.open_after, t.close_after) for k, t in waste.trackers.items()
    } == EPISODE_DURATIONS
    traffic = as_saved_before(TrafficProcessor().new_state("c"), period=Q)
    assert {t.open_after for t in traffic.trackers.values()} == {OPEN_AFTER}
