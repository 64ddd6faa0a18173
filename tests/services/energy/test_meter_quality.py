"""On the simulator's labelled events the meter model raises the expected alerts (one at the
start of each episode, one at its end), and a clean week raises almost none.

Pure logic: the simulator's generator feeds the processor directly, four weeks of learning and
then the week under test (French calendar: Easter Monday 2026 is in it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from services.energy.domain.meter import EnergyProcessor
from shared.schemas import AlertEvent
from tests.runtime_support import drive
from townpulse.simulator.events import LabelledEvent
from townpulse.simulator.readings import iter_readings
from townpulse.simulator.town import build_town

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 9, tzinfo=UTC)  # a Monday
WEEK_UNDER_TEST = START + timedelta(days=28)  # Monday 6 April 2026: Easter Monday
END = WEEK_UNDER_TEST + timedelta(days=7)
# A clean week of 12 meters: at most this many episodes that no label explains (documented in
# docs/energy.md).
MAX_FALSE_EPISODES = 2

ACCEPTED_KINDS = {
    "meter_left_on": {"energy.consumption_off_hours", "energy.consumption_high"},
    "meter_step_up": {"energy.consumption_high", "energy.consumption_off_hours"},
    "meter_stuck": {"energy.meter_stuck"},
}


def _run(events: Iterable[LabelledEvent]) -> list[AlertEvent]:
    town = build_town(energy=12, waste=0, traffic=0, seed=11)
    sim = iter_readings(town, start=START, end=END, events=list(events))
    alerts, _ = drive(EnergyProcessor(), sim, since=WEEK_UNDER_TEST)
    return alerts


@pytest.fixture(scope="module")
def labelled() -> list[LabelledEvent]:
    d = WEEK_UNDER_TEST
    return [
        # Easter Monday: a school heated and lit as on a working day.
        LabelledEvent(
            "meter_left_on", "meter-001", d + timedelta(hours=5), d + timedelta(hours=19)
        ),
        LabelledEvent(
            "meter_left_on",
            "meter-002",
            d + timedelta(days=1, hours=19),
            d + timedelta(days=2, hours=5),
        ),
        LabelledEvent(
            "meter_step_up",
            "meter-003",
            d + timedelta(days=2, hours=9),
            d + timedelta(days=2, hours=21),
        ),
        LabelledEvent(
            "meter_stuck",
            "meter-004",
            d + timedelta(days=3, hours=9),
            d + timedelta(days=3, hours=17),
        ),
    ]


@pytest.fixture(scope="module")
def alerts(labelled: list[LabelledEvent]) -> list[AlertEvent]:
    return _run(labelled)


def test_each_labelled_event_opens_and_closes_one_episode(
    labelled: list[LabelledEvent], alerts: list[AlertEvent]
) -> None:
    for ev in labelled:
        starts = [
            a
            for a in alerts
            if a.device_id == ev.device_id
            and a.phase == "start"
            and ev.start - timedelta(hours=1) <= a.episode_start <= ev.end
        ]
        assert len(starts) == 1, (ev, starts)
        start = starts[0]
        assert start.kind in ACCEPTED_KINDS[ev.kind], (ev, start.kind)
        assert start.explanation["observed"] != start.explanation["expected"]
        assert "message" in start.explanation
        ends = [
            a
            for a in alerts
            if a.phase == "end"
            and a.event_id.startswith(
                f"{ev.device_id}:{start.kind}:{start.episode_start.isoformat()}"
            )
        ]
        assert len(ends) == 1, (ev, "episode never ended")
        assert ends[0].ts > start.ts


def test_a_clean_week_raises_almost_nothing() -> None:
    starts = [a for a in _run([]) if a.phase == "start"]
    assert len(starts) <= MAX_FALSE_EPISODES, starts


def test_alerts_come_once_per_episode_not_per_reading(alerts: list[AlertEvent]) -> None:
    ids = [a.event_id for a in alerts]
    assert len(ids) == len(set(ids))
    # Twelve hours of a stuck meter (48 readings) give two events, not dozens.
    stuck = [a for a in alerts if a.device_id == "meter-004"]
    assert len(stuck) == 2
