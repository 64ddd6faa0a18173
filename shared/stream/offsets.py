"""Where a consumer group's positions live: one interface, two stores.

- `KafkaOffsets` (storage): the rows' writes are idempotent, so offsets are committed to Kafka
  after the transaction; a crash in between only re-reads records that are already stored.
- `DbOffsets` (the runtime, alerts): effects are not idempotent, so the offsets are written in
  the same transaction as the effects, with compare-and-set fencing: a commit whose starting
  offsets are not the stored ones aborts the transaction. A worker that lost its partitions
  (a rebalance it has not heard of yet, a pause longer than the session timeout) can then neither
  double an effect nor move an offset backwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from shared.db import Pool

log = logging.getLogger(__name__)

# How long an offset commit to Kafka may take before it is given up (the next batch commits).
COMMIT_TIMEOUT_S = 15.0


class Fenced(RuntimeError):
    """Another consumer committed these partitions since we read their offsets."""


@dataclass(frozen=True, slots=True)
class Position:
    """A partition's stored position: effects committed up to `next_offset` (exclusive); the
    models' checkpoint covers records up to `checkpoint` (exclusive), at most `next_offset`."""

    next_offset: int | None
    checkpoint: int | None = None


class OffsetStore(Protocol):
    async def load(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, Position]:
        """Positions of newly assigned partitions (empty: the consumer's own are right)."""
        ...

    async def save(
        self,
        conn: AsyncConnection[DictRow],
        ends: Mapping[TopicPartition, int],
        *,
        checkpoints: Mapping[TopicPartition, int] | None = None,
    ) -> None:
        """Inside the batch's transaction."""
        ...

    async def committed(self, ends: Mapping[TopicPartition, int]) -> None:
        """After the batch's transaction committed."""
        ...

    def forget(self, partitions: Collection[TopicPartition]) -> None: ...


class KafkaOffsets:
    """Offsets committed to Kafka after the rows are durable."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def load(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, Position]:
        return {}

    async def save(
        self,
        conn: AsyncConnection[DictRow],
        ends: Mapping[TopicPartition, int],
        *,
        checkpoints: Mapping[TopicPartition, int] | None = None,
    ) -> None:
        return None

    async def committed(self, ends: Mapping[TopicPartition, int]) -> None:
        await commit_to_kafka(self._consumer, ends)

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        return None


class DbOffsets:
    """Offsets (and checkpoint offsets) in `stream_offsets`, written with the effects."""

    def __init__(self, *, pool: Pool, consumer: AIOKafkaConsumer, group_id: str) -> None:
        self._pool = pool
        self._consumer = consumer
        self.group_id = group_id
        # What we believe is stored: the starting point every commit is compared with.
        self._known: dict[TopicPartition, int | None] = {}

    def known(self, tp: TopicPartition) -> int | None:
        return self._known.get(tp)

    async def load(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, Position]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT topic, partition, next_offset, checkpoint_offset FROM stream_offsets "
                "WHERE group_id = %s",
                (self.group_id,),
            )
            rows = {(r["topic"], r["partition"]): r for r in await cur.fetchall()}
        out: dict[TopicPartition, Position] = {}
        for tp in partitions:
            row = rows.get((tp.topic, tp.partition))
            pos = (
                Position(row["next_offset"], row["checkpoint_offset"])
                if row
                else Position(None, None)
            )
            self._known[tp] = pos.next_offset
            out[tp] = pos
        return out

    async def save(
        self,
        conn: AsyncConnection[DictRow],
        ends: Mapping[TopicPartition, int],
        *,
        checkpoints: Mapping[TopicPartition, int] | None = None,
    ) -> None:
        for tp, end in ends.items():
            expected = self._known.get(tp)
            if expected is not None and end <= expected:
                continue  # a replayed range: its effects are already committed
            cur = await conn.execute(
                """
                INSERT INTO stream_offsets AS o (group_id, topic, partition, next_offset)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (group_id, topic, partition) DO UPDATE
                    SET next_offset = EXCLUDED.next_offset, updated_at = now()
                    WHERE o.next_offset = %s
                RETURNING 1
                """,
                (self.group_id, tp.topic, tp.partition, end, expected),
            )
            if await cur.fetchone() is None:
                raise Fenced(f"{tp.topic}[{tp.partition}]: stored offset is not {expected}")
        for tp, offset in (checkpoints or {}).items():
            owner_offset = max(ends.get(tp, -1), self._known.get(tp) or -1)
            cur = await conn.execute(
                """
                UPDATE stream_offsets SET checkpoint_offset = %s
                WHERE group_id = %s AND topic = %s AND partition = %s AND next_offset = %s
                """,
                (offset, self.group_id, tp.topic, tp.partition, owner_offset),
            )
            if cur.rowcount != 1:
                raise Fenced(f"{tp.topic}[{tp.partition}]: checkpoint of a partition not ours")

    async def committed(self, ends: Mapping[TopicPartition, int]) -> None:
        advanced = {tp: e for tp, e in ends.items() if e > (self._known.get(tp) or -1)}
        self._known.update(advanced)
        if advanced:
            # Only for lag tools: the database's offsets are the ones that count.
            await commit_to_kafka(self._consumer, advanced)

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        for tp in partitions:
            self._known.pop(tp, None)


async def commit_to_kafka(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> None:
    assigned = consumer.assignment()
    mine = {tp: o for tp, o in ends.items() if tp in assigned}
    if not mine:
        return
    try:
        # Bounded: aiokafka retries a commit until the coordinator answers, and this one is
        # only for lag tools, never worth holding the batch lock (which a rebalance waits for).
        await asyncio.wait_for(consumer.commit(mine), COMMIT_TIMEOUT_S)
    except (KafkaError, TimeoutError) as exc:
        # A rebalance or a Kafka outage: the records are re-read, and the writes make that
        # harmless (idempotent rows, or fenced offsets in the database).
        log.warning("Kafka offset commit failed: %r", exc)
