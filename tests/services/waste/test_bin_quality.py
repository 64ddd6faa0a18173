"""On the simulator's labelled events the bin model raises the expected alerts (one at the
start of each episode, one at its end), and a clean week raises almost none.

Pure logic: the simulator's generator feeds the processor directly, three weeks of learning and
then the week under test (glitches at ten times the simulator's default rate, to be sure the
cleaning is exercised).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from services.waste.domain.bin import BinState, WasteProcessor
from shared.schemas import AlertEvent
from tests.runtime_support import drive
from townpulse.simulator.events import LabelledEvent
from townpulse.simulator.readings import iter_readings
from townpulse.simulator.town import Zone, build_town

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
WEEK_UNDER_TEST = START + timedelta(days=21)
END = WEEK_UNDER_TEST + timedelta(days=6)
TOWN = build_town(energy=0, waste=16, traffic=0, seed=11)
MARKET_BINS = {d.id for d in TOWN if getattr(d.spec, "zone", None) is Zone.MARKET}
SILENT_BIN = "bin-010"
SILENCE = (WEEK_UNDER_TEST + timedelta(days=4), WEEK_UNDER_TEST + timedelta(days=4, hours=3))
GLITCH_RATE = 0.01
# A clean week of 16 bins: at most this many episodes that no label explains.
MAX_FALSE_EPISODES = 1

EXPECTED_KIND = {
    "bin_fast_fill": "waste.abnormal_fill",
    "bin_fire": "waste.fire_risk",
    "bin_stuck": "waste.sensor_stuck",
}


def _run(events: Iterable[LabelledEvent]) -> tuple[list[AlertEvent], dict[str, BinState]]:
    sim = iter_readings(TOWN, start=START, end=END, events=list(events), glitch_rate=GLITCH_RATE)
    return drive(
        WasteProcessor(),
        sim,
        since=WEEK_UNDER_TEST,
        skip=lambda r: r.device.id == SILENT_BIN and SILENCE[0] <= r.ts < SILENCE[1],
    )


@pytest.fixture(scope="module")
def labelled() -> list[LabelledEvent]:
    d = WEEK_UNDER_TEST
    return [
        LabelledEvent("bin_fast_fill", "bin-003", d + timedelta(hours=9), d + timedelta(hours=15)),
        LabelledEvent(
            "bin_fire", "bin-005", d + timedelta(days=1, hours=14), d + timedelta(days=1, hours=15)
        ),
        LabelledEvent(
            "bin_stuck", "bin-007", d + timedelta(days=2, hours=2), d + timedelta(days=3, hours=2)
        ),
        # An extra market on a Wednesday: the market square's bins fill several times faster.
        LabelledEvent(
            "market_day", None, d + timedelta(days=2, hours=6), d + timedelta(days=2, hours=12)
        ),
    ]


@pytest.fixture(scope="module")
def run(labelled: list[LabelledEvent]) -> tuple[list[AlertEvent], dict[str, BinState]]:
    return _run(labelled)


def test_each_labelled_event_opens_and_closes_one_episode(
    labelled: list[LabelledEvent], run: tuple[list[AlertEvent], dict[str, BinState]]
) -> None:
    alerts, _ = run
    for ev in labelled:
        if ev.device_id is None:
            continue
        starts = [
            a
            for a in alerts
            if a.device_id == ev.device_id
            and a.phase == "start"
            and ev.start - timedelta(hours=1) <= a.episode_start <= ev.end
        ]
        assert [a.kind for a in starts] == [EXPECTED_KIND[ev.kind]], (ev, starts)
        start = starts[0]
        assert start.event_id == AlertEvent.make_id(
            device_id=start.device_id,
            kind=start.kind,
            episode_start=start.episode_start,
            phase="start",
        )
        assert "message" in start.explanation
        ends = [
            a
            for a in alerts
            if a.phase == "end"
            and a.kind == start.kind
            and a.device_id == start.device_id
            and a.episode_start == start.episode_start
        ]
        assert len(ends) == 1 and ends[0].ts > start.ts, (ev, "episode never ended")


def test_the_market_day_shows_as_abnormal_filling_of_market_bins_only(
    labelled: list[LabelledEvent], run: tuple[list[AlertEvent], dict[str, BinState]]
) -> None:
    alerts, _ = run
    market = next(e for e in labelled if e.kind == "market_day")
    during = [
        a
        for a in alerts
        if a.phase == "start"
        and market.covers(a.episode_start)
        and a.device_id not in {e.device_id for e in labelled}
    ]
    assert during, "the extra market went unnoticed"
    assert {a.kind for a in during} == {"waste.abnormal_fill"}
    assert {a.device_id for a in during} <= MARKET_BINS


def test_silence_is_reported_when_the_bin_speaks_again(
    run: tuple[list[AlertEvent], dict[str, BinState]],
) -> None:
    alerts, _ = run
    silent = [a for a in alerts if a.kind == "waste.sensor_silent"]
    assert [a.phase for a in silent] == ["start", "end"]
    assert {a.device_id for a in silent} == {SILENT_BIN}
    assert silent[0].explanation["silent_h"] >= 3


def test_a_clean_week_raises_almost_nothing() -> None:
    alerts, states = _run([])
    unexplained = [a for a in alerts if a.phase == "start" and a.kind != "waste.sensor_silent"]
    assert len(unexplained) <= MAX_FALSE_EPISODES, unexplained
    # Glitches (0 or 100) never reach the cleaned level.
    for s in states.values():
        assert s.level is not None and 0.0 <= s.level <= 100.0
        assert s.rate_samples > 24 * 7
