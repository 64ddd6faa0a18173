"""Storage app: consume readings and dead letters, write them, then commit the offsets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from services.storage.settings import StorageSettings
from services.storage.writer import Writer
from shared.db import Pool, create_pool, storage_backend
from shared.http import check_pool, observability_router
from shared.kafka import create_consumer
from shared.schemas import DeadLetter, ReadingBatch
from shared.topics import DEADLETTER_TOPIC, READINGS_TOPICS

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

# A database outage: keep the batch, retry with a growing pause (the offsets stay uncommitted).
RETRY_BACKOFF_S = (0.5, 1, 2, 5, 10)


class StorageWorker:
    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        pool: Pool,
        writer: Writer,
        settings: StorageSettings,
    ) -> None:
        self._consumer = consumer
        self._pool = pool
        self._writer = writer
        self._s = settings

    async def run(self) -> None:
        while True:
            records = await self._consumer.getmany(
                timeout_ms=self._s.batch_wait_ms, max_records=self._s.batch_max_records
            )
            if not records:
                continue
            await self._handle(records)

    async def _handle(self, records: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        batches: list[ReadingBatch] = []
        deadletters: list[tuple[str, int, int, DeadLetter]] = []
        count = 0
        for tp, msgs in records.items():
            RECORDS.labels(tp.topic).inc(len(msgs))
            count += len(msgs)
            for m in msgs:
                try:
                    if tp.topic == DEADLETTER_TOPIC:
                        deadletters.append(
                            (tp.topic, tp.partition, m.offset, DeadLetter.from_bytes(m.value))
                        )
                    else:
                        batches.append(ReadingBatch.from_bytes(m.value))
                except (ValidationError, ValueError) as exc:
                    # Only the gateway writes these topics, with the same schemas: a record
                    # that does not parse is a bug or a foreign producer. Keep it visible as a
                    # dead letter instead of blocking the partition.
                    UNREADABLE.inc()
                    log.error("unreadable record on %s@%d: %s", tp.topic, m.offset, exc)
                    deadletters.append(
                        (
                            tp.topic,
                            tp.partition,
                            m.offset,
                            DeadLetter(
                                received_at=datetime.now(UTC),
                                topic=f"kafka:{tp.topic}",
                                reason="unreadable_record",
                                detail=str(exc)[:500],
                                payload=(m.value or b"")[:1024].decode("utf-8", "replace"),
                                payload_size=len(m.value or b""),
                            ),
                        )
                    )
        BATCH.observe(count)
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    result = await self._writer.write(
                        conn, batches=batches, deadletters=deadletters
                    )
                break
            except Exception as exc:
                self._writer.forget_partitions()
                FAILURES.inc()
                delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                attempt += 1
                log.error("batch write failed, retrying in %s s: %r", delay, exc)
                await asyncio.sleep(delay)
        WRITE_SECONDS.observe(time.perf_counter() - started)
        ROWS.labels("readings", "inserted").inc(result.inserted)
        ROWS.labels("readings", "duplicate").inc(result.offered - result.inserted)
        ROWS.labels("deadletters", "inserted").inc(result.deadletters)
        now = datetime.now(UTC)
        for b in batches:
            STORE_LATENCY.observe((now - b.received_at).total_seconds())
        # Only now are the rows durable: commit exactly what was written.
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in records.items()}
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions away: the next owner re-reads these records and
            # the idempotent writes make that harmless.
            log.warning("offset commit failed (records will be re-read): %s", exc)
        self._update_lag(offsets)

    def _update_lag(self, offsets: dict[TopicPartition, int]) -> None:
        lag: dict[str, int] = {}
        for tp, next_offset in offsets.items():
            high = self._consumer.highwater(tp)
            if high is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - next_offset)
        for topic, value in lag.items():
            LAG.labels(topic).set(value)

    async def maintain(self) -> None:
        """Drop whole partitions older than the retention (plain PostgreSQL only)."""
        while True:
            try:
                cutoff = datetime.now(UTC) - timedelta(days=self._s.retention_days)
                async with self._pool.connection() as conn, conn.transaction():
                    cur = await conn.execute(
                        """
                        SELECT c.relname FROM pg_inherits i
                        JOIN pg_class c ON c.oid = i.inhrelid
                        JOIN pg_class p ON p.oid = i.inhparent
                        WHERE p.relname = 'readings'
                        """
                    )
                    for row in await cur.fetchall():
                        name = row["relname"]
                        year, month = int(name[9:13]), int(name[14:16])
                        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
                        if end <= cutoff:
                            log.info("dropping partition %s (retention)", name)
                            await conn.execute(f'DROP TABLE "{name}"')
            except Exception:
                log.exception("partition maintenance failed")
            await asyncio.sleep(self._s.maintenance_interval_s)


def create_app(settings: StorageSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = create_pool(settings.database_url, min_size=1, max_size=3)
        await pool.open()
        backend = await storage_backend(pool)
        consumer = create_consumer(
            *READINGS_TOPICS.values(),
            DEADLETTER_TOPIC,
            bootstrap=settings.kafka_bootstrap,
            group_id=settings.group_id,
            client_id=settings.instance,
            max_poll_records=settings.batch_max_records,
        )
        await consumer.start()
        worker = StorageWorker(
            consumer=consumer,
            pool=pool,
            writer=Writer(maintain_rollups=backend == "postgres"),
            settings=settings,
        )
        tasks = [asyncio.create_task(worker.run())]
        if backend == "postgres":
            tasks.append(asyncio.create_task(worker.maintain()))
        app.state.pool, app.state.consumer, app.state.tasks = pool, consumer, tasks
        log.info("storage started", extra={"backend": backend})
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()
            await pool.close()

    app = FastAPI(title="TownPulse storage", lifespan=lifespan)

    async def worker_alive() -> None:
        task = app.state.tasks[0]
        if task.done():
            raise RuntimeError("consumer loop stopped")

    async def kafka_assigned() -> None:
        await app.state.consumer.topics()

    app.include_router(
        observability_router(
            lambda: {
                "database": lambda: check_pool(app.state.pool),
                "kafka": kafka_assigned,
                "worker": worker_alive,
            }
        )
    )
    return app
