"""Two glitch readings of 0 in a row look like a collection; the level coming straight back is
not abnormal filling (it was on make up's town: bench/simulated_town.py, seed 1), while a real
collection followed by a dump still is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.waste.domain.bin import CollectionRow, WasteProcessor
from shared.schemas import AlertEvent, Reading

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=15)
# Ten days: past the week of fill-rate learning abnormal filling waits for.
DAYS = 10


def _run(tail: Callable[[float], list[float]]) -> tuple[list[AlertEvent], list[CollectionRow]]:
    """A bin filling a point an hour from 5%, emptied at 85%, then `tail` from its level."""
    values, level = [], 5.0
    for _ in range(DAYS * 96):
        values.append(level)
        level = 5.0 if level >= 85.0 else level + 0.25
    values += tail(level)
    proc = WasteProcessor()
    state = proc.new_state("b1")
    events: list[AlertEvent] = []
    collections: list[CollectionRow] = []
    for i, value in enumerate(values):
        reading = Reading(ts=T0 + i * STEP, metric="fill_pct", value=value)
        out = proc.process(state, device_id="b1", readings=[reading])
        events += out.events
        if i >= DAYS * 96:
            collections += [r for r in out.rows if isinstance(r, CollectionRow)]
    return events, collections


def test_two_zero_glitches_then_the_old_level_raise_no_abnormal_filling() -> None:
    events, collections = _run(lambda lv: [lv, 0.0, 0.0, *(lv + 0.25 * k for k in range(1, 16))])
    # The glitch pair is taken for a collection (nothing tells them apart yet)...
    assert len(collections) == 1
    # ...but the level coming back to where it stood is no dumping.
    assert [e for e in events if e.kind == "waste.abnormal_fill"] == []


def test_a_dump_after_a_real_collection_is_still_abnormal_filling() -> None:
    def tail(lv: float) -> list[float]:
        emptied = [lv, 3.0, 3.1, 3.3]
        return [
            *emptied,
            *(3.3 + 10 * k for k in range(1, 5)),
            *(43.5 + 0.25 * k for k in range(8)),
        ]

    events, collections = _run(tail)
    assert len(collections) == 1
    opened = [e for e in events if e.kind == "waste.abnormal_fill" and e.phase == "start"]
    assert len(opened) == 1
