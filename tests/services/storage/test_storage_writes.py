"""Storage against real Kafka and PostgreSQL: idempotent rows, exact rollups, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from shared.schemas import Reading, ReadingBatch
from shared.topics import READINGS_TOPICS, Domain
from tests.support import wait_for

pytestmark = pytest.mark.integration


def _batch(device_id: str, start: datetime, values: list[float]) -> ReadingBatch:
    return ReadingBatch(
        device_id=device_id,
        domain=Domain.ENERGY,
        received_at=datetime.now(UTC),
        readings=[
            Reading(ts=start + timedelta(minutes=15 * i), metric="energy_kwh", value=v)
            for i, v in enumerate(values)
        ],
    )


async def _produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def _rows(database_url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def test_redelivered_and_overlapping_batches_are_stored_once(stack_env) -> None:
    device_id = f"st-{uuid.uuid4().hex[:10]}"
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    first = _batch(device_id, start, [1.0, 2.0, 3.0, 4.0])
    # Overlaps the first batch by two readings (with different values: the first one wins),
    # and the first batch is delivered twice, as after a crash before the offset commit.
    second = ReadingBatch(
        device_id=device_id,
        domain=Domain.ENERGY,
        received_at=datetime.now(UTC),
        readings=[
            Reading(ts=start + timedelta(minutes=15 * i), metric="energy_kwh", value=100.0 + i)
            for i in range(2, 8)
        ],
    )
    topic, key = READINGS_TOPICS[Domain.ENERGY], device_id.encode()
    asyncio.run(
        _produce(
            stack_env["KAFKA_BOOTSTRAP"],
            [
                (topic, key, first.to_bytes()),
                (topic, key, first.to_bytes()),
                (topic, key, second.to_bytes()),
            ],
        )
    )
    db = stack_env["DATABASE_URL"]
    wait_for(
        lambda: (
            _rows(db, "SELECT count(*) FROM readings WHERE device_id = %s", device_id)[0][0] == 8
        ),
        what="8 distinct readings",
    )
    values = [
        r[0]
        for r in _rows(db, "SELECT value FROM readings WHERE device_id = %s ORDER BY ts", device_id)
    ]
    assert values == [1.0, 2.0, 3.0, 4.0, 104.0, 105.0, 106.0, 107.0]

    # The rollups counted each stored reading exactly once.
    hourly = _rows(
        db,
        "SELECT bucket, n, total, min, max FROM readings_hourly "
        "WHERE device_id = %s ORDER BY bucket",
        device_id,
    )
    assert [(n, total, mn, mx) for _, n, total, mn, mx in hourly] == [
        (4, 10.0, 1.0, 4.0),
        (4, 422.0, 104.0, 107.0),
    ]
    daily_n = _rows(db, "SELECT sum(n) FROM readings_daily WHERE device_id = %s", device_id)
    assert daily_n[0][0] == 8


def test_an_unreadable_record_becomes_a_dead_letter_and_does_not_block(stack_env) -> None:
    device_id = f"st-{uuid.uuid4().hex[:10]}"
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    topic, key = READINGS_TOPICS[Domain.ENERGY], device_id.encode()
    asyncio.run(
        _produce(
            stack_env["KAFKA_BOOTSTRAP"],
            [
                (topic, key, b"\x00not a reading batch"),
                (topic, key, _batch(device_id, start, [5.0]).to_bytes()),
            ],
        )
    )
    db = stack_env["DATABASE_URL"]
    wait_for(
        lambda: (
            _rows(db, "SELECT count(*) FROM readings WHERE device_id = %s", device_id)[0][0] == 1
        ),
        what="the valid reading after the bad record",
    )
    letters = _rows(
        db, "SELECT reason, topic FROM deadletters WHERE payload LIKE %s", "%not a reading batch%"
    )
    assert ("unreadable_record", f"kafka:{topic}") in letters


def test_storage_reports_its_batches_in_metrics(stack_env) -> None:
    text = httpx.get(f"{stack_env['STORAGE_URL']}/metrics").text
    assert "townpulse_storage_batch_records_bucket" in text
    assert "townpulse_storage_receive_to_stored_seconds_bucket" in text
