"""Storage app: consume readings and dead letters, write them, then commit the offsets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import ValidationError

from services.storage.adapters.writer import Writer
from services.storage.settings import StorageSettings
from shared import retention
from shared.db import Pool, create_pool, storage_backend
from shared.deadletters import write_deadletters
from shared.http import POOL, AppResource, create_service_app
from shared.kafka import create_consumer
from shared.schemas import DeadLetter, ReadingBatch
from shared.stream.loop import Batch, Record, Start, StreamLoop, Work
from shared.stream.offsets import KafkaOffsets, Position
from shared.supervise import Supervisor
from shared.topics import DEADLETTER_TOPIC, READINGS_TOPICS
from shared.townzone import check_rollup_zone

log = logging.getLogger(__name__)

RECORDS = Counter("townpulse_storage_records_total", "Kafka records consumed", ["topic"])
ROWS = Counter("townpulse_storage_rows_total", "Rows written", ["table", "outcome"])
UNREADABLE = Counter("townpulse_storage_unreadable_total", "Records that match no schema")
BATCH = Histogram(
    "townpulse_storage_batch_records",
    "Kafka records per transaction",
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000),
)
WRITE_SECONDS = Histogram(
    "townpulse_storage_write_seconds",
    "Database transaction time per batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STORE_LATENCY = Histogram(
    "townpulse_storage_receive_to_stored_seconds",
    "Gateway receipt to committed row",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LAG = Gauge("townpulse_storage_lag_records", "Records behind the end of each topic", ["topic"])
FAILURES = Counter("townpulse_storage_write_failures_total", "Batches that failed to write")


@dataclass(slots=True)
class Parsed:
    batches: list[ReadingBatch]
    deadletters: list[tuple[TopicPartition, int, DeadLetter]]


class StorageHandler:
    """Readings and dead letters into PostgreSQL (a stream-core handler; Kafka offsets)."""

    # Writes are idempotent and no state outlives a transaction: a batch the database refuses
    # is cut in halves until the record it refuses is found and dead-lettered.
    splittable = True

    def __init__(
        self, *, consumer: AIOKafkaConsumer, pool: Pool, writer: Writer, settings: StorageSettings
    ) -> None:
        self._consumer = consumer
        self._pool = pool
        self._writer = writer
        self._s = settings
        self._started = 0.0

    async def prepare(self, batch: Batch) -> Parsed:
        parsed = Parsed([], [])
        # Counted per topic and batch: `labels()` per record was 12 % of this service's CPU.
        per_topic: dict[str, int] = {}
        for tp, m in batch.items():
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + 1
            try:
                if tp.topic == DEADLETTER_TOPIC:
                    parsed.deadletters.append((tp, m.offset, DeadLetter.from_bytes(m.value)))
                else:
                    parsed.batches.append(ReadingBatch.from_bytes(m.value))
            except (ValidationError, ValueError) as exc:
                # Only the gateway writes these topics, with the same schemas: a record that
                # does not parse is a bug or a foreign producer. Keep it visible as a dead
                # letter instead of blocking the partition.
                UNREADABLE.inc()
                log.error("unreadable record on %s@%d: %s", tp.topic, m.offset, exc)
                parsed.deadletters.append(
                    (tp, m.offset, record_deadletter(m, "unreadable_record", str(exc)))
                )
        for topic, n in per_topic.items():
            RECORDS.labels(topic).inc(n)
        BATCH.observe(len(batch))
        self._started = time.perf_counter()
        return parsed

    async def write(self, conn: AsyncConnection[DictRow], batch: Batch, prepared: Parsed) -> None:
        try:
            result = await self._writer.write(
                conn, batches=prepared.batches, deadletters=prepared.deadletters
            )
        except Exception:
            # Partitions created in the rolled-back transaction are gone: check again.
            self._writer.forget_partitions()
            FAILURES.inc()
            raise
        ROWS.labels("readings", "inserted").inc(result.inserted)
        ROWS.labels("readings", "duplicate").inc(result.offered - result.inserted)
        ROWS.labels("deadletters", "inserted").inc(result.deadletters)

    def committed(self, batch: Batch, prepared: Parsed) -> None:
        WRITE_SECONDS.observe(time.perf_counter() - self._started)
        now = datetime.now(UTC)
        for b in prepared.batches:
            STORE_LATENCY.observe((now - b.received_at).total_seconds())
        self._update_lag(batch.end)

    async def dead_letter(
        self, conn: AsyncConnection[DictRow], tp: TopicPartition, record: Record, reason: str
    ) -> None:
        await write_deadletters(
            conn, [(tp, record.offset, record_deadletter(record, "database_rejected", reason))]
        )

    def discard(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        return {}

    def assigned(
        self, positions: Mapping[TopicPartition, Position]
    ) -> dict[TopicPartition, int | Start]:
        return {}

    def revoked(self, partitions: Collection[TopicPartition]) -> Work | None:
        return None

    def between(self, *, idle: bool) -> Work | None:
        return None

    def _update_lag(self, offsets: Mapping[TopicPartition, int]) -> None:
        lag: dict[str, int] = {}
        for tp, next_offset in offsets.items():
            high = self._consumer.highwater(tp)
            if high is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - next_offset)
        for topic, value in lag.items():
            LAG.labels(topic).set(value)


class RetentionMaintenance:
    """Apply the retention of every data class, on a schedule (shared/retention.py)."""

    def __init__(self, *, pool: Pool, settings: StorageSettings) -> None:
        self._pool = pool
        self._s = settings

    async def run(self) -> None:
        while True:
            try:
                async with self._pool.connection() as conn:
                    await retention.ensure_policies(conn, self._s.retention)
                    await conn.commit()
                    await retention.enforce(conn, self._s.retention)
            except Exception:
                log.exception("retention maintenance failed")
            await asyncio.sleep(self._s.maintenance_interval_s)


CONSUMER: AppResource[AIOKafkaConsumer] = AppResource("consumer")


def create_app(settings: StorageSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI, supervisor: Supervisor) -> AsyncIterator[None]:
        await check_rollup_zone(settings.database_url, settings.timezone)
        pool = create_pool(settings.database_url, min_size=1, max_size=3)
        await pool.open()
        backend = await storage_backend(pool)
        consumer = create_consumer(
            bootstrap=settings.kafka_bootstrap,
            group_id=settings.group_id,
            client_id=settings.instance,
            max_poll_records=settings.batch_max_records,
            fill_ms=settings.batch_fill_ms,
        )
        handler = StorageHandler(
            consumer=consumer,
            pool=pool,
            writer=Writer(maintain_rollups=backend == "postgres", timezone=settings.timezone),
            settings=settings,
        )
        loop = StreamLoop(
            consumer=consumer,
            pool=pool,
            handler=handler,
            offsets=KafkaOffsets(consumer),
            group_id=settings.group_id,
            batch_max_records=settings.batch_max_records,
            batch_wait_ms=settings.batch_wait_ms,
            stall_s=settings.stream_stall_s,
        )
        loop.subscribe([*READINGS_TOPICS.values(), DEADLETTER_TOPIC])
        await consumer.start()
        supervisor.start("consumer", loop.run())
        # Retention runs on both backends: TimescaleDB's policies cover the hypertables only.
        # On its own role's pool (one connection: an hourly job) when there is one.
        maintenance = (
            create_pool(settings.maintenance_database_url, min_size=1, max_size=1)
            if settings.maintenance_database_url is not None
            else None
        )
        if maintenance is not None:
            await maintenance.open()
        supervisor.start(
            "retention",
            RetentionMaintenance(pool=maintenance or pool, settings=settings).run(),
        )
        POOL.put(app, pool)
        CONSUMER.put(app, consumer)
        log.info("storage started", extra={"backend": backend})
        try:
            yield
        finally:
            await supervisor.stop()
            await consumer.stop()
            if maintenance is not None:
                await maintenance.close()
            await pool.close()

    # Probes and metrics only: no route takes a key.
    return create_service_app(
        title="TownPulse storage",
        settings=settings,
        lifespan=lifespan,
        checks={"kafka": lambda app: CONSUMER.of(app).topics()},
        keys=False,
    )


def record_deadletter(record: Record, reason: str, detail: str) -> DeadLetter:
    """A Kafka record the storage cannot take, as a dead letter."""
    raw = record.value or b""
    return DeadLetter(
        received_at=datetime.now(UTC),
        topic=f"kafka:{record.topic}",
        reason=reason,
        detail=detail[:500],
        payload=raw[:1024].decode("utf-8", "replace"),
        payload_size=len(raw),
    )
