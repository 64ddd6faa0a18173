"""A meter that falls silent is told when it speaks again (energy.meter_silent), scaled to its
own reporting interval; a short gap is not a silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.energy.domain.meter import SILENT, EnergyProcessor, EpisodeRow
from shared.schemas import Reading

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _silences(every: timedelta, gap: timedelta) -> tuple[list[str], list[EpisodeRow]]:
    proc = EnergyProcessor()
    state = proc.new_state("m1")
    times = [T0 + i * every for i in range(48)]
    times += [times[-1] + gap + i * every for i in range(4)]
    readings = [
        Reading(ts=t, metric="energy_kwh", value=2.0 + (i % 3)) for i, t in enumerate(times)
    ]
    effects = proc.process(state, device_id="m1", readings=readings)
    events = [e.phase for e in effects.events if e.kind == SILENT]
    rows = [r for r in effects.rows if isinstance(r, EpisodeRow) and r.kind == SILENT]
    return events, rows


@pytest.mark.parametrize(
    ("every", "gap", "silent"),
    [
        (timedelta(minutes=15), timedelta(minutes=45), False),  # three missed readings
        (timedelta(minutes=15), timedelta(hours=3), True),
        (timedelta(hours=1), timedelta(hours=3), False),  # an hourly meter: three periods
        (timedelta(hours=1), timedelta(hours=6), True),
        (timedelta(minutes=1), timedelta(minutes=30), False),  # at least an hour, always
        (timedelta(minutes=1), timedelta(hours=2), True),
    ],
)
def test_a_silence_is_told_once_when_the_meter_speaks_again(
    every: timedelta, gap: timedelta, silent: bool
) -> None:
    events, rows = _silences(every, gap)
    if not silent:
        assert events == [] and rows == []
        return
    assert events == ["start", "end"]
    (row,) = rows
    last_before = T0 + 47 * every
    assert (row.started_at, row.ended_at) == (last_before, last_before + gap)
