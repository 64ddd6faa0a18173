"""The energy service on the real stack: a SIGKILL or a rebalance changes nothing in what it
derives. The oracle is the same processor run here, uninterrupted, on the same readings."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from services.energy.domain.meter import EnergyProcessor, ScoreRow
from shared.schemas import Reading, ReadingBatch
from shared.topics import READINGS_TOPICS, Domain
from tests.support import wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.e2e

TOPIC = READINGS_TOPICS[Domain.ENERGY]


def _series(device_id: str, *, start: datetime, n: int, phase: float) -> list[ReadingBatch]:
    out = []
    for i in range(n):
        ts = start + timedelta(minutes=15 * i)
        hour = (ts.hour + ts.minute / 60) / 24
        value = round(5 + 4 * math.sin(2 * math.pi * (hour + phase)) + (i % 7) * 0.1, 3)
        if i == n - 20:
            value += 40  # something to flag
        out.append(
            ReadingBatch(
                device_id=device_id,
                domain=Domain.ENERGY,
                received_at=datetime.now(UTC),
                readings=[Reading(ts=ts, metric="energy_kwh", value=value)],
            )
        )
    return out


def _oracle(series: dict[str, list[ReadingBatch]]) -> dict[tuple[str, datetime], tuple]:
    proc = EnergyProcessor()
    rows: dict[tuple[str, datetime], tuple] = {}
    for device_id, batches in series.items():
        state = proc.new_state(device_id)
        for b in batches:
            for r in proc.process(state, device_id=device_id, readings=list(b.readings)).rows:
                if isinstance(r, ScoreRow):
                    rows[(r.device_id, r.ts)] = (
                        r.observed,
                        r.expected,
                        r.lower,
                        r.upper,
                        r.score,
                        r.is_anomaly,
                        r.kind,
                    )
    return rows


async def _produce(bootstrap: str, batches: list[ReadingBatch]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(TOPIC, b.to_bytes(), key=b.device_id.encode()) for b in batches
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _stored(db: str, device_ids: list[str]) -> dict[tuple[str, datetime], tuple]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT device_id, ts, observed, expected, lower, upper, score, is_anomaly, kind "
            "FROM energy_scores WHERE device_id = ANY(%s)",
            (device_ids,),
        ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def _interleave(series: dict[str, list[ReadingBatch]], lo: int, hi: int) -> list[ReadingBatch]:
    return [s[i] for i in range(lo, hi) for s in series.values()]


def test_sigkill_and_restart_give_exactly_the_uninterrupted_outputs(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=6)
    names = [f"em-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    series = {d: _series(d, start=start, n=400, phase=k / 5) for k, d in enumerate(names)}
    ids = list(series)
    db, kafka = stack_env["DATABASE_URL"], stack_env["KAFKA_BOOTSTRAP"]

    asyncio.run(_produce(kafka, _interleave(series, 0, 200)))
    wait_for(lambda: len(_stored(db, ids)) >= 300, timeout=120, what="half of the first part")
    stack.kill("energy")  # mid-stream, possibly mid-batch
    asyncio.run(_produce(kafka, _interleave(series, 200, 400)))
    stack.restart_service("energy")

    expected = _oracle(series)
    wait_for(
        lambda: len(_stored(db, ids)) == len(expected),
        timeout=180,
        what="every reading scored once",
    )
    assert _stored(db, ids) == expected


def test_rebalance_hands_devices_over_with_their_state(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=5)
    # Enough devices to land on every partition.
    names = [f"rb-{uuid.uuid4().hex[:8]}" for _ in range(24)]
    series = {d: _series(d, start=start, n=300, phase=k / 24) for k, d in enumerate(names)}
    ids = list(series)
    db, kafka = stack_env["DATABASE_URL"], stack_env["KAFKA_BOOTSTRAP"]
    stack.restart_service("energy-2")  # a second worker joins the group
    try:
        asyncio.run(_produce(kafka, _interleave(series, 0, 150)))
        wait_for(lambda: len(_stored(db, ids)) >= 1000, timeout=120, what="both workers busy")
        stack.kill("energy")  # the other one takes its partitions over
        asyncio.run(_produce(kafka, _interleave(series, 150, 300)))
        expected = _oracle(series)
        wait_for(
            lambda: len(_stored(db, ids)) == len(expected),
            timeout=240,
            what="every reading scored once by one of the workers",
        )
        assert _stored(db, ids) == expected
    finally:
        stack.restart_service("energy")
        stack.stop("energy-2")


def test_energy_routes_are_served_under_the_operator_api(api: httpx.Client) -> None:
    r = api.get("/v1/energy/summary", params={"day": "2026-01-05"})
    assert r.status_code == 200
    assert set(r.json()) >= {"day", "total_kwh", "wasted_kwh", "top_anomalies"}
    assert httpx.get(api.base_url.join("/v1/energy/summary")).status_code == 401
