"""A technician's verdict changes the next alerts of that meter as docs/energy.md ("Feedback")
says: a false alarm is tolerated in the same context afterwards (bounded in size, time and
number), "expected" keeps the period out of learning, the latest verdict counts, and a verdict
offered again (as the runtime does, and a replay) changes nothing more."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.energy.domain import feedback as fb
from services.energy.domain.meter import (
    CLOSE_AFTER,
    SILENT,
    EnergyProcessor,
    MeterState,
    ScoreRow,
)
from shared.runtime.cadence import readings_for
from shared.runtime.feedback import Feedback
from shared.schemas import AlertEvent, Reading
from tests.feedback_support import (
    DAY,
    FAULT_SHARE,
    STEP,
    T0,
    WARM_UP,
    fault,
    in_fault_hours,
    readings,
)

pytestmark = pytest.mark.unit

PROC = EnergyProcessor()
GIVEN = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def warmed() -> bytes:
    """Three ordinary weeks learnt (pickled: each test starts from its own copy)."""
    state = PROC.new_state("m")
    PROC.process(state, device_id="m", readings=readings(0, WARM_UP, seed=1))
    return pickle.dumps(state)


def _run(
    state: MeterState,
    rs: list[Reading],
    *,
    before_each: Callable[[MeterState], None] = lambda s: None,
) -> tuple[list[AlertEvent], list[ScoreRow]]:
    """Reading by reading, as the runtime hands them (one message each)."""
    events: list[AlertEvent] = []
    scores: list[ScoreRow] = []
    for r in rs:
        before_each(state)
        out = PROC.process(state, device_id="m", readings=[r])
        events += out.events
        scores += [x for x in out.rows if isinstance(x, ScoreRow)]
    return events, scores


def _starts(events: list[AlertEvent]) -> list[AlertEvent]:
    # Some tests begin hours after the warm-up's last reading: the meter tells that gap as a
    # silence, which is not the episode judged here.
    return [e for e in events if e.phase == "start" and e.kind != SILENT]


def _verdict(
    events: list[AlertEvent], verdict: str, *, feedback_id: int = 1, alert: str = "al_1"
) -> Feedback:
    """The verdict on the alert the episode in `events` opened, as the alerts service stores it."""
    [start] = _starts(events)
    ends = [e.ts for e in events if e.phase == "end" and e.kind == start.kind]
    return Feedback(
        id=feedback_id,
        alert_id=alert,
        device_id="m",
        kind=start.kind,
        verdict=verdict,  # type: ignore[arg-type]
        episode_start=start.episode_start,
        episode_end=ends[0] if ends else None,
        given_at=GIVEN,
    )


def _two_meters(warmed: bytes) -> tuple[MeterState, MeterState, list[AlertEvent]]:
    """Two copies of the same meter; the fault on the fourth Monday alerts on both."""
    judged, other = pickle.loads(warmed), pickle.loads(warmed)
    monday = readings(WARM_UP, DAY, seed=1, extra=fault)
    events, _ = _run(judged, monday)
    other_events, _ = _run(other, monday)
    assert [e.kind for e in _starts(events)] == ["energy.consumption_high"]
    assert [e.kind for e in _starts(other_events)] == ["energy.consumption_high"]
    return judged, other, events


def _same_again(
    state: MeterState, *, first: int = WARM_UP + DAY, share: float = FAULT_SHARE
) -> list[AlertEvent]:
    """A normal Tuesday, then the same fault on the Wednesday."""
    _run(state, readings(first, DAY, seed=1))

    def extra(ts: datetime) -> float:
        return share if in_fault_hours(ts) else 0.0

    events, _ = _run(state, readings(first + DAY, DAY, seed=1, extra=extra))
    return _starts(events)


def test_a_false_alarm_silences_the_same_situation_on_that_meter_only(warmed: bytes) -> None:
    judged, other, events = _two_meters(warmed)
    PROC.apply_feedback(judged, _verdict(events, "false_alarm"), received_at=GIVEN)
    assert _same_again(judged) == []
    assert [e.kind for e in _same_again(other)] == ["energy.consumption_high"]


def test_real_and_a_change_of_mind_leave_the_meter_alerting(warmed: bytes) -> None:
    judged, _, events = _two_meters(warmed)
    PROC.apply_feedback(judged, _verdict(events, "real"), received_at=GIVEN)
    assert fb.FeedbackMemory().tolerances == judged.feedback.tolerances
    changed, _, events = _two_meters(warmed)
    PROC.apply_feedback(changed, _verdict(events, "false_alarm", feedback_id=1), received_at=GIVEN)
    PROC.apply_feedback(changed, _verdict(events, "real", feedback_id=2), received_at=GIVEN)
    # The earlier verdict offered again (the runtime re-offers within its horizon): ignored.
    PROC.apply_feedback(changed, _verdict(events, "false_alarm", feedback_id=1), received_at=GIVEN)
    assert [e.kind for e in _same_again(changed)] == ["energy.consumption_high"]


def test_a_fault_beyond_the_cap_still_alerts(warmed: bytes) -> None:
    judged, _, events = _two_meters(warmed)
    PROC.apply_feedback(judged, _verdict(events, "false_alarm"), received_at=GIVEN)
    # Three times the fault: past MAX_TOLERANCE band-widths, whatever the false alarm said.
    assert [e.kind for e in _same_again(judged, share=3 * FAULT_SHARE)] == [
        "energy.consumption_high"
    ]


def test_the_tolerance_lapses_after_its_days(warmed: bytes) -> None:
    judged, _, events = _two_meters(warmed)
    PROC.apply_feedback(judged, _verdict(events, "false_alarm"), received_at=GIVEN)
    [tolerance] = judged.feedback.tolerances.values()
    days = fb.TOLERANCE_DAYS + 1
    _run(judged, readings(WARM_UP + DAY, days * DAY, seed=1))
    assert T0 + (WARM_UP + DAY + days * DAY) * STEP > tolerance.until
    assert judged.feedback.tolerances == {}
    assert [e.kind for e in _same_again(judged, first=WARM_UP + DAY + days * DAY)] == [
        "energy.consumption_high"
    ]


def test_a_flood_of_false_alarms_is_bounded() -> None:
    memory = fb.FeedbackMemory()
    ts = T0
    for i in range(3 * fb.MAX_ENTRIES):
        ts = T0 + timedelta(hours=i)
        memory.recent.append(fb.Flagged(ts, "energy.consumption_high", ("workday", 3), 9.0))
        memory.apply(
            Feedback(i + 1, f"al_{i}", "m", "energy.consumption_high", "false_alarm", ts, ts, ts),
            received_at=ts,
        )
    assert len(memory.tolerances) == fb.MAX_ENTRIES
    assert all(
        t.by_context == {("workday", 3): fb.MAX_TOLERANCE} for t in memory.tolerances.values()
    )
    # The newest are kept.
    assert set(memory.tolerances) == {
        f"al_{i}" for i in range(2 * fb.MAX_ENTRIES, 3 * fb.MAX_ENTRIES)
    }


def test_a_verdict_offered_before_every_reading_acts_as_once(warmed: bytes) -> None:
    once, offered, events = _two_meters(warmed)
    verdict = _verdict(events, "false_alarm")
    PROC.apply_feedback(once, verdict, received_at=GIVEN)
    tuesday = readings(WARM_UP + DAY, 2 * DAY, seed=1, extra=fault)
    events_once, scores_once = _run(once, tuesday)
    events_offered, scores_offered = _run(
        offered,
        tuesday,
        before_each=lambda s: PROC.apply_feedback(s, verdict, received_at=GIVEN),
    )
    assert events_offered == events_once and scores_offered == scores_once
    assert pickle.dumps(offered) == pickle.dumps(once)


def test_expected_keeps_the_period_out_of_learning(warmed: bytes) -> None:
    """Four days at 2.5 times the usual level from Monday 9:00 (planned works): without a
    verdict the detector takes it as the new normal after its relearning delay; marked
    expected, it learns nothing of the period, and learns again once it is over."""
    judged, other = pickle.loads(warmed), pickle.loads(warmed)
    start = WARM_UP + 36
    works = readings(start, 4 * DAY, seed=1, extra=lambda ts: 1.5)
    after = T0 + (start + 11 * DAY + 12) * STEP  # a Friday noon, a time to ask about
    first_hours, rest = works[:12], works[12:]
    events, _ = _run(judged, first_hours)
    _run(other, first_hours)
    PROC.apply_feedback(judged, _verdict(events, "expected"), received_at=GIVEN)
    before = judged.detector.forecaster.predict_one({"ts": after})
    assert other.detector.forecaster.predict_one({"ts": after}) == before
    judged_events, _ = _run(judged, rest)
    other_events, _ = _run(other, rest)
    # The other meter took the works as the new normal (its episode ended on its own)...
    assert [e.phase for e in other_events] == ["end"]
    assert other.detector.forecaster.predict_one({"ts": after}) != before
    # ...the judged one learnt nothing of them, and its episode goes on while they last.
    assert judged_events == []
    assert judged.detector.forecaster.predict_one({"ts": after}) == before
    # Back to normal: the episode ends, the period with it, and the meter learns again.
    back_events, scores = _run(judged, readings(start + 4 * DAY, DAY, seed=1))
    assert [e.phase for e in back_events] == ["end"]
    assert not any(s.is_anomaly for s in scores[readings_for(CLOSE_AFTER, STEP) :])
    assert judged.detector.forecaster.predict_one({"ts": after}) != before
