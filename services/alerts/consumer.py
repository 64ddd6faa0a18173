"""Kafka -> alerts: episode events and readings, with offsets stored in the database.

Each batch is one transaction: the alert changes, their outbox rows, the processed event ids and
the next offsets. On assignment the consumer seeks to the offsets stored there, so a crash at any
point neither loses nor re-applies a record (the Kafka commit afterwards only feeds lag tools).
Time-based transitions run between batches, when the consumer has caught up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter
from pydantic import ValidationError

from services.alerts import service
from services.alerts.adapters import repository as repo
from services.alerts.domain.lifecycle import Damping
from services.alerts.settings import AlertsSettings
from shared.db import Pool
from shared.schemas import AlertEvent, ReadingBatch
from shared.topics import ALERTS_TOPIC

log = logging.getLogger(__name__)

EVENTS_IN = Counter("townpulse_alerts_events_in_total", "Records consumed", ["source", "outcome"])

# A database outage: keep the batch and retry with a growing pause (nothing is committed).
RETRY_BACKOFF_S = (0.5, 1, 2, 5, 10)


class SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, continue from the offsets committed with the effects in PostgreSQL."""

    def __init__(self, consumer: AIOKafkaConsumer, pool: Pool, group_id: str) -> None:
        self._consumer, self._pool, self._group = consumer, pool, group_id

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass  # every processed batch is already in the database

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._pool.connection() as conn:
            stored = await repo.load_offsets(conn, self._group)
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                self._consumer.seek(tp, offset)
            elif tp.topic == ALERTS_TOPIC:
                await self._consumer.seek_to_beginning(tp)  # every episode counts
            else:
                # Rules judge new readings: a first start does not replay a week of history.
                await self._consumer.seek_to_end(tp)


class AlertsConsumer:
    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        pool: Pool,
        settings: AlertsSettings,
        on_outbox: Callable[[], None],
    ) -> None:
        self._consumer = consumer
        self._pool = pool
        self._s = settings
        self._on_outbox = on_outbox
        self._damping = Damping(
            min_duration_s=settings.event_min_duration_s, cooldown_s=settings.event_cooldown_s
        )
        self._last_tick = 0.0

    async def run(self) -> None:
        while True:
            records = await self._consumer.getmany(
                timeout_ms=self._s.batch_wait_ms, max_records=self._s.batch_max_records
            )
            if records:
                await self._retrying(functools.partial(self._handle, records))
            overdue = time.monotonic() - self._last_tick >= self._s.max_tick_interval_s
            if not records or overdue:
                await self._retrying(self._tick)

    async def _retrying(self, work: Callable[[], object]) -> None:
        attempt = 0
        while True:
            try:
                await work()  # type: ignore[misc]
                return
            except Exception as exc:
                delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                attempt += 1
                log.error("alerts transaction failed, retrying in %s s: %r", delay, exc)
                await asyncio.sleep(delay)

    async def _handle(self, records: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        events: list[AlertEvent] = []
        batches: list[ReadingBatch] = []
        for tp, msgs in records.items():
            source = "alerts" if tp.topic == ALERTS_TOPIC else "readings"
            for m in msgs:
                try:
                    if source == "alerts":
                        events.append(AlertEvent.from_bytes(m.value))
                    else:
                        batches.append(ReadingBatch.from_bytes(m.value))
                except (ValidationError, ValueError) as exc:
                    # Not ours to fix, and blocking the partition would stop every alert.
                    EVENTS_IN.labels(source, "unreadable").inc()
                    log.error("unreadable record on %s@%d: %s", tp.topic, m.offset, exc)
        offsets = {(tp.topic, tp.partition): msgs[-1].offset + 1 for tp, msgs in records.items()}
        async with self._pool.connection() as conn, conn.transaction():
            applied, duplicates = await service.process(
                conn, events=events, batches=batches, event_damping=self._damping
            )
            await repo.save_offsets(conn, self._s.group_id, offsets)
        EVENTS_IN.labels("alerts", "processed").inc(len(events) - duplicates)
        EVENTS_IN.labels("alerts", "duplicate").inc(duplicates)
        EVENTS_IN.labels("readings", "processed").inc(len(batches))
        service.count(applied)
        if applied.outbox:
            self._on_outbox()
        try:
            await self._consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
        except KafkaError as exc:
            log.warning("Kafka offset commit failed (the database has them): %s", exc)

    async def _tick(self) -> None:
        self._last_tick = time.monotonic()
        async with self._pool.connection() as conn, conn.transaction():
            applied = await service.tick(conn, now=datetime.now(UTC))
        service.count(applied)
        if applied.outbox:
            self._on_outbox()
