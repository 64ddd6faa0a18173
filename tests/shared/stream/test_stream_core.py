"""The stream core against the real Kafka and PostgreSQL: poison records are split out and
dead-lettered while the rest goes through; a consumer that lost its partition is fenced."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Mapping
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import SecretStr

from shared.db import create_pool
from shared.stream.loop import Batch, Record, Start, StreamLoop, Work
from shared.stream.offsets import DbOffsets, Fenced, Position

pytestmark = pytest.mark.integration


class TableHandler:
    """Writes each record's value into a table whose CHECK refuses 'poison'."""

    splittable = True

    def __init__(self, table: str) -> None:
        self.table = table
        self.dead: list[tuple[int, str]] = []

    async def prepare(self, batch: Batch) -> list[tuple[int, str]]:
        return [(m.offset, m.value.decode()) for _, m in batch.items()]

    async def write(
        self, conn: AsyncConnection[DictRow], batch: Batch, prepared: list[tuple[int, str]]
    ) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(f"INSERT INTO {self.table} VALUES (%s, %s)", prepared)

    def committed(self, batch: Batch, prepared: Any) -> None:
        return None

    async def dead_letter(
        self, conn: AsyncConnection[DictRow], tp: TopicPartition, record: Record, reason: str
    ) -> None:
        self.dead.append((record.offset, reason))

    def discard(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        return {}

    def assigned(
        self, positions: Mapping[TopicPartition, Position]
    ) -> dict[TopicPartition, int | Start]:
        return {
            tp: p.next_offset if p.next_offset is not None else "beginning"
            for tp, p in positions.items()
        }

    def revoked(self, partitions: Collection[TopicPartition]) -> Work | None:
        return None

    def between(self, *, idle: bool) -> Work | None:
        return None


async def _topic(bootstrap: str, values: list[bytes]) -> str:
    topic = f"test.core.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for v in values:
        await producer.send(topic, v)
    await producer.flush()
    await producer.stop()
    return topic


async def _poison_scenario(env: dict[str, str]) -> None:
    db = env["DATABASE_URL"]
    table = f"t_core_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (o bigint PRIMARY KEY, v text CHECK (v <> 'poison'))")
    values = [b"poison" if i in (17, 60) else f"v{i}".encode() for i in range(100)]
    topic = await _topic(env["KAFKA_BOOTSTRAP"], values)
    pool = create_pool(SecretStr(db), max_size=2)
    await pool.open()
    group = f"core-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=env["KAFKA_BOOTSTRAP"],
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    offsets = DbOffsets(pool=pool, consumer=consumer, group_id=group)
    handler = TableHandler(table)
    loop = StreamLoop(
        consumer=consumer,
        pool=pool,
        handler=handler,
        offsets=offsets,
        group_id=group,
        batch_max_records=500,
        batch_wait_ms=500,
    )
    loop.subscribe([topic])
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while len(handler.dead) < 2 or offsets.known(TopicPartition(topic, 0)) != 100:
                await loop.poll_once()
        with psycopg.connect(db) as conn:
            stored = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            next_offset = conn.execute(
                "SELECT next_offset FROM stream_offsets WHERE group_id = %s", (group,)
            ).fetchone()
        assert stored is not None and stored[0] == 98
        assert [o for o, _ in handler.dead] == [17, 60]
        assert all("CheckViolation" in reason for _, reason in handler.dead)
        assert next_offset is not None and next_offset[0] == 100
    finally:
        await consumer.stop()
        await pool.close()
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table}")


def test_poison_records_are_split_out_and_the_rest_goes_through(
    stack_env: dict[str, str],
) -> None:
    asyncio.run(_poison_scenario(stack_env))


async def _fencing_scenario(env: dict[str, str]) -> None:
    pool = create_pool(SecretStr(env["DATABASE_URL"]), max_size=2)
    await pool.open()
    group = f"fence-{uuid.uuid4().hex[:8]}"
    tp = TopicPartition("test.fence", 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=env["KAFKA_BOOTSTRAP"])
    await consumer.start()
    old, new = (DbOffsets(pool=pool, consumer=consumer, group_id=group) for _ in range(2))
    try:
        await old.load([tp])
        async with pool.connection() as conn, conn.transaction():
            await old.save(conn, {tp: 10})
        await old.committed({tp: 10})
        # A rebalance gives the partition to `new`, which commits on; `old` has not noticed.
        await new.load([tp])
        async with pool.connection() as conn, conn.transaction():
            await new.save(conn, {tp: 25})
        await new.committed({tp: 25})
        with pytest.raises(Fenced):
            async with pool.connection() as conn, conn.transaction():
                await old.save(conn, {tp: 20})  # would double 10..20 and move 25 back to 20
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT next_offset FROM stream_offsets WHERE group_id = %s", (group,)
            )
            row = await cur.fetchone()
        assert row is not None and row["next_offset"] == 25
    finally:
        await consumer.stop()
        await pool.close()


def test_a_consumer_that_lost_its_partition_cannot_commit(stack_env: dict[str, str]) -> None:
    asyncio.run(_fencing_scenario(stack_env))
