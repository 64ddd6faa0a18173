"""Checkpoints a few at a time: a batch that fails after many partial checkpoints replays from
the partition's checkpoint offset, skips what each state's own checkpoint already holds, and
derives exactly what an uninterrupted run derives."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import SecretStr

from services.energy.adapters.db import write_rows
from services.energy.domain.meter import EnergyProcessor, ScoreRow
from shared.db import create_pool
from shared.runtime.worker import CHECKPOINTS, REPLAYED
from shared.schemas import Reading, ReadingBatch
from shared.stream.loop import BATCHES
from shared.topics import Domain
from tests.runtime_support import Series, interleave, oracle, produce, runtime_loop, stored

pytestmark = pytest.mark.integration

METERS = 12
READINGS_EACH = 60
SQL = (
    "SELECT device_id, ts, observed, expected, lower, upper, score, is_anomaly, kind "
    "FROM energy_scores WHERE device_id = ANY(%s)"
)


def _series() -> Series:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    out: Series = {}
    for k in range(METERS):
        device = f"inc-{uuid.uuid4().hex[:6]}-{k}"
        out[device] = [
            ReadingBatch(
                device_id=device,
                domain=Domain.ENERGY,
                received_at=start,
                readings=[
                    Reading(
                        ts=start + timedelta(minutes=15 * i),
                        metric="energy_kwh",
                        value=round(5 + 3 * math.sin(i / 8 + k) + (i % 5) * 0.2, 3),
                    )
                ],
            )
            for i in range(READINGS_EACH)
        ]
    return out


async def _run(stack_env: dict[str, str], topic: str, total: int, group: str) -> tuple[int, int]:
    """Runs the worker until `total` records are committed; one batch fails half-way."""
    pool = create_pool(SecretStr(stack_env["DATABASE_URL"]), max_size=3)
    await pool.open()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack_env["KAFKA_BOOTSTRAP"],
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    calls = [0]
    checkpointed_before_failure = [0]

    async def sink(conn: AsyncConnection[DictRow], rows: list[Any]) -> None:
        calls[0] += 1
        if calls[0] == 12:
            # The transaction fails after its rows, states and offsets were prepared, as a
            # lost database connection would make it.
            checkpointed_before_failure[0] = int(CHECKPOINTS.labels(group)._value.get())
            raise ConnectionError("injected: the database went away mid-transaction")
        await write_rows(conn, rows)

    _, loop = runtime_loop(
        consumer=consumer,
        pool=pool,
        processor=EnergyProcessor(),
        sink=sink,
        group=group,
        topic=topic,
        batch_max_records=25,
        batch_wait_ms=200,
        # Every changed model is due at once, and the budget lets one through per batch: the
        # partitions' checkpoints creep forward state by state.
        checkpoint_interval_s=0.0,
        checkpoint_budget_s=1e-9,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(120):
            while True:
                await loop.poll_once()
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        "SELECT coalesce(sum(next_offset), 0) AS n FROM stream_offsets"
                        " WHERE group_id = %s",
                        (group,),
                    )
                    row = await cur.fetchone()
                if row is not None and row["n"] >= total:
                    break
    finally:
        await consumer.stop()
        await pool.close()
    return int(BATCHES.labels(group, "failed")._value.get()), checkpointed_before_failure[0]


def test_partial_checkpoints_replay_to_the_uninterrupted_result(
    stack_env: dict[str, str],
) -> None:
    series = _series()
    topic = f"test.inc.{uuid.uuid4().hex[:8]}"
    bootstrap = stack_env["KAFKA_BOOTSTRAP"]

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        await admin.close()

    asyncio.run(create())
    produce(bootstrap, topic, interleave(series, 0, READINGS_EACH))
    replayed = REPLAYED.labels(f"inc-{topic}")._value.get()
    failures, checkpointed = asyncio.run(
        _run(stack_env, topic, METERS * READINGS_EACH, f"inc-{topic}")
    )

    assert failures == 1
    # Eleven batches committed one state's checkpoint each before the failure.
    assert checkpointed == 11
    assert REPLAYED.labels(f"inc-{topic}")._value.get() > replayed
    want = oracle(
        EnergyProcessor(),
        series,
        row_type=ScoreRow,
        values=lambda r: (r.observed, r.expected, r.lower, r.upper, r.score, r.is_anomaly, r.kind),
    )
    got = stored(stack_env["DATABASE_URL"], SQL, list(series))
    assert got.keys() == want.keys()
    assert [k for k in want if got[k] != want[k]] == []
