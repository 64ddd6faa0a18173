"""A technician's verdict reaches the energy service's model on the real stack: two meters alert
on the same fault; one's alert is marked a false alarm through the operator API; the same fault
two days later alerts on the other meter only (docs/energy.md, "Feedback"). Killed and
restarted meanwhile, the service replays from its checkpoints and derives exactly what an
uninterrupted run that applied the verdict at the same reading derives."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from services.energy.domain.meter import EnergyProcessor, ScoreRow
from shared.runtime.feedback import Feedback
from shared.schemas import Reading, ReadingBatch
from shared.topics import READINGS_TOPICS, Domain
from tests.feedback_support import DAY, WARM_UP, fault, readings
from tests.runtime_support import Key, assert_stored_once, produce
from tests.support import wait_for
from townpulse.stack import Stack

TOPIC = READINGS_TOPICS[Domain.ENERGY]
MONDAY, TUESDAY, WEDNESDAY = WARM_UP, WARM_UP + DAY, WARM_UP + 2 * DAY


def _batches(device_id: str, rs: list[Reading]) -> list[ReadingBatch]:
    # Received now: after any verdict given before this call, as a gateway would stamp them.
    now = datetime.now(UTC)
    return [
        ReadingBatch(device_id=device_id, domain=Domain.ENERGY, received_at=now, readings=[r])
        for r in rs
    ]


def _send(stack_env: dict[str, str], parts: dict[str, list[Reading]]) -> None:
    series = {d: _batches(d, rs) for d, rs in parts.items()}
    n = len(next(iter(series.values())))
    produce(stack_env["KAFKA_BOOTSTRAP"], TOPIC, [s[i] for i in range(n) for s in series.values()])


def _scored_until(db: str, device_ids: list[str], last: datetime) -> bool:
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT device_id) FROM energy_scores"
            " WHERE device_id = ANY(%s) AND ts = %s",
            (device_ids, last),
        ).fetchone()
    return row is not None and row[0] == len(device_ids)


def _episodes(db: str, device_id: str) -> list[datetime]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT started_at FROM energy_episodes WHERE device_id = %s ORDER BY started_at",
            (device_id,),
        ).fetchall()
    return [r[0] for r in rows]


def _alerts(api: httpx.Client, device_id: str) -> list[dict[str, object]]:
    r = api.get("/v1/alerts", params={"device_id": device_id})
    assert r.status_code == 200, r.text
    return list(r.json())


@pytest.fixture
def operator(stack_env: dict[str, str], role_keys: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack_env["API_URL"],
        headers={"Authorization": f"Bearer {role_keys['operator']}"},
        timeout=30,
    ) as client:
        yield client


@pytest.mark.integration
def test_a_false_alarm_silences_the_same_fault_on_that_meter_only(
    api: httpx.Client, operator: httpx.Client, stack_env: dict[str, str]
) -> None:
    db = stack_env["DATABASE_URL"]
    judged, other = (f"fb-m-{uuid.uuid4().hex[:8]}" for _ in range(2))
    meters = [judged, other]
    # Three ordinary weeks, then the fault on the Monday: both meters alert.
    history = readings(0, WARM_UP, seed=1) + readings(MONDAY, DAY, seed=1, extra=fault)
    _send(stack_env, {m: history for m in meters})
    wait_for(lambda: _scored_until(db, meters, history[-1].ts), timeout=240, what="the Monday")
    for m in meters:
        assert len(_episodes(db, m)) == 1
    [alert] = wait_for(lambda: _alerts(api, judged), timeout=60, what="the judged meter's alert")
    wait_for(lambda: _alerts(api, other), timeout=60, what="the other meter's alert")

    r = operator.post(f"/v1/alerts/{alert['id']}/feedback", json={"verdict": "false_alarm"})
    assert r.status_code == 201, r.text

    # A normal Tuesday, the same fault on the Wednesday, received after the verdict.
    later = readings(TUESDAY, DAY, seed=1) + readings(WEDNESDAY, DAY, seed=1, extra=fault)
    _send(stack_env, {m: later for m in meters})
    wait_for(lambda: _scored_until(db, meters, later[-1].ts), timeout=120, what="the Wednesday")
    assert len(_episodes(db, judged)) == 1
    episodes = _episodes(db, other)
    assert len(episodes) == 2 and episodes[1] > history[-1].ts
    # The other meter's second alert opens; the judged meter has only its first.
    wait_for(lambda: len(_alerts(api, other)) == 2, timeout=60, what="the second alert")
    assert len(_alerts(api, judged)) == 1


SCORES = (
    "SELECT device_id, ts, observed, expected, lower, upper, score, is_anomaly, kind "
    "FROM energy_scores WHERE device_id = ANY(%s)"
)


def _oracle(
    parts: list[list[Reading]], *, meters: list[str], verdict: Feedback
) -> dict[Key, tuple[object, ...]]:
    """The scores of an uninterrupted run that applies the verdict between the two parts (the
    first reading received after it), computed here."""
    processor = EnergyProcessor()
    rows: dict[Key, tuple[object, ...]] = {}
    for m in meters:
        state = processor.new_state(m)
        for k, part in enumerate(parts):
            if k == 1 and m == verdict.device_id:
                processor.apply_feedback(state, verdict, received_at=datetime.now(UTC))
            for r in part:
                for x in processor.process(state, device_id=m, readings=[r]).rows:
                    if isinstance(x, ScoreRow):
                        rows[(x.device_id, x.ts)] = (
                            x.observed,
                            x.expected,
                            x.lower,
                            x.upper,
                            x.score,
                            x.is_anomaly,
                            x.kind,
                        )
    return rows


@pytest.mark.e2e
def test_a_verdict_survives_a_kill_and_the_replay(
    api: httpx.Client, operator: httpx.Client, stack: Stack, stack_env: dict[str, str]
) -> None:
    db = stack_env["DATABASE_URL"]
    judged, other = (f"fb-r-{uuid.uuid4().hex[:8]}" for _ in range(2))
    meters = [judged, other]
    history = readings(0, WARM_UP, seed=2) + readings(MONDAY, DAY, seed=2, extra=fault)
    _send(stack_env, {m: history for m in meters})
    wait_for(lambda: _scored_until(db, meters, history[-1].ts), timeout=240, what="the Monday")
    [alert] = wait_for(lambda: _alerts(api, judged), timeout=60, what="the judged meter's alert")
    r = operator.post(f"/v1/alerts/{alert['id']}/feedback", json={"verdict": "false_alarm"})
    assert r.status_code == 201, r.text
    given = r.json()
    verdict = Feedback(
        id=given["id"],
        alert_id=given["alert_id"],
        device_id=judged,
        kind=str(alert["kind"]),
        verdict="false_alarm",
        episode_start=datetime.fromisoformat(given["episode_start"]),
        episode_end=None
        if given["episode_end"] is None
        else datetime.fromisoformat(given["episode_end"]),
        given_at=datetime.fromisoformat(given["given_at"]),
    )

    later = readings(TUESDAY, DAY, seed=2) + readings(WEDNESDAY, DAY, seed=2, extra=fault)
    _send(stack_env, {m: later for m in meters})
    wait_for(
        lambda: _scored_until(db, [judged], later[0].ts), timeout=120, what="the Tuesday begun"
    )
    stack.kill("energy")  # mid-stream, possibly mid-batch: the restart replays from checkpoints
    stack.restart_service("energy")

    expected = _oracle([history, later], meters=meters, verdict=verdict)
    assert_stored_once(db, SCORES, meters, expected, timeout=240, what="every reading scored once")
    assert len(_episodes(db, judged)) == 1
    assert len(_episodes(db, other)) == 2
