"""On the simulator's labelled events the counter model raises the expected alerts (one at the
start of each episode, one at its end), and a clean week raises almost none.

Pure logic: the simulator's generator feeds the processor directly, three weeks of learning and
then the week under test.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from services.traffic.domain.counter import TrafficProcessor
from shared.schemas import AlertEvent
from tests.runtime_support import drive
from townpulse.simulator.events import LabelledEvent
from townpulse.simulator.readings import iter_readings
from townpulse.simulator.town import Zone, build_town

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
WEEK_UNDER_TEST = START + timedelta(days=21)
END = WEEK_UNDER_TEST + timedelta(days=6)
TOWN = build_town(energy=0, waste=0, traffic=10, seed=11)
CENTRE = {d.id for d in TOWN if getattr(d.spec, "zone", None) is Zone.CENTRE}
SILENT = "counter-009"
SILENCE = (WEEK_UNDER_TEST + timedelta(days=4), WEEK_UNDER_TEST + timedelta(days=4, hours=3))
MAX_FALSE_EPISODES = 1
# An extra market draws 30% more cars to the centre at 25% lower speed: an event, reported as
# such, never as an incident.
MARKET_KINDS = {"traffic.flow_high", "traffic.congestion"}


def _run(events: Iterable[LabelledEvent]) -> list[AlertEvent]:
    sim = iter_readings(TOWN, start=START, end=END, events=list(events))
    alerts, _ = drive(
        TrafficProcessor(),
        sim,
        since=WEEK_UNDER_TEST,
        skip=lambda r: r.device.id == SILENT and SILENCE[0] <= r.ts < SILENCE[1],
    )
    return alerts


@pytest.fixture(scope="module")
def labelled() -> list[LabelledEvent]:
    d = WEEK_UNDER_TEST
    return [
        # Morning rush on a centre street, then an early afternoon on a residential road.
        LabelledEvent(
            "road_incident",
            "counter-002",
            d + timedelta(days=1, hours=7),
            d + timedelta(days=1, hours=9),
        ),
        LabelledEvent(
            "road_incident",
            "counter-004",
            d + timedelta(days=3, hours=13),
            d + timedelta(days=3, hours=14),
        ),
        LabelledEvent(
            "market_day", None, d + timedelta(days=2, hours=6), d + timedelta(days=2, hours=12)
        ),
    ]


@pytest.fixture(scope="module")
def alerts(labelled: list[LabelledEvent]) -> list[AlertEvent]:
    return _run(labelled)


def test_each_road_incident_opens_and_closes_one_incident(
    labelled: list[LabelledEvent], alerts: list[AlertEvent]
) -> None:
    for ev in (e for e in labelled if e.kind == "road_incident"):
        starts = [
            a
            for a in alerts
            if a.device_id == ev.device_id
            and a.phase == "start"
            and ev.start - timedelta(minutes=30) <= a.episode_start <= ev.end
        ]
        assert [a.kind for a in starts] == ["traffic.incident"], (ev, starts)
        start = starts[0]
        assert start.explanation["vehicles"] < start.explanation["expected_vehicles"]
        assert "message" in start.explanation
        ends = [
            a
            for a in alerts
            if a.phase == "end"
            and a.kind == start.kind
            and a.device_id == start.device_id
            and a.episode_start == start.episode_start
        ]
        assert len(ends) == 1 and ends[0].ts >= ev.end, (ev, "episode never ended")


def test_the_market_day_is_an_event_on_centre_roads_not_an_incident(
    labelled: list[LabelledEvent], alerts: list[AlertEvent]
) -> None:
    market = next(e for e in labelled if e.kind == "market_day")
    during = [a for a in alerts if a.phase == "start" and market.covers(a.episode_start)]
    assert during, "the extra market went unnoticed"
    assert {a.kind for a in during} <= MARKET_KINDS
    assert {a.device_id for a in during} <= CENTRE


def test_a_silent_counter_is_reported_when_it_counts_again(alerts: list[AlertEvent]) -> None:
    silent = [a for a in alerts if a.kind == "traffic.counter_silent"]
    assert [(a.device_id, a.phase) for a in silent] == [(SILENT, "start"), (SILENT, "end")]


def test_a_clean_week_raises_almost_nothing() -> None:
    starts = [a for a in _run([]) if a.phase == "start" and a.kind != "traffic.counter_silent"]
    assert len(starts) <= MAX_FALSE_EPISODES, starts
    ids = [a.event_id for a in starts]
    assert len(ids) == len(set(ids))
