"""Kafka -> alerts: episode events and readings, on the stream core with offsets in the database.

Each batch is one transaction: the alert changes, their outbox rows, the processed event ids and
the next offsets (compare-and-set: a consumer that lost its partitions cannot commit). A record
the database refuses is split out of its batch and dead-lettered. Time-based transitions run
between batches, when the consumer has caught up, or at least every `max_tick_interval_s`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import Counter
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import ValidationError

from services.alerts import service
from services.alerts.domain.lifecycle import Damping
from services.alerts.settings import AlertsSettings
from shared.db import Pool
from shared.deadletters import write_deadletters
from shared.schemas import AlertEvent, DeadLetter, ReadingBatch
from shared.stream.loop import Batch, Record, Start, Work
from shared.stream.offsets import Position
from shared.topics import ALERTS_TOPIC

log = logging.getLogger(__name__)

EVENTS_IN = Counter("townpulse_alerts_events_in_total", "Records consumed", ["source", "outcome"])


@dataclass
class Parsed:
    events: list[AlertEvent] = field(default_factory=list)
    batches: list[ReadingBatch] = field(default_factory=list)
    applied: service.Applied | None = None
    duplicates: int = 0


class AlertsHandler:
    """A stream-core handler: no state outlives a transaction, so batches may be split."""

    splittable = True

    def __init__(
        self, *, pool: Pool, settings: AlertsSettings, on_outbox: Callable[[], None]
    ) -> None:
        self._pool = pool
        self._s = settings
        self._on_outbox = on_outbox
        self._damping = Damping(
            min_duration_s=settings.event_min_duration_s, cooldown_s=settings.event_cooldown_s
        )
        self._last_tick = 0.0

    async def prepare(self, batch: Batch) -> Parsed:
        parsed = Parsed()
        for tp, m in batch.items():
            source = "alerts" if tp.topic == ALERTS_TOPIC else "readings"
            try:
                if source == "alerts":
                    parsed.events.append(AlertEvent.from_bytes(m.value))
                else:
                    parsed.batches.append(ReadingBatch.from_bytes(m.value))
            except (ValidationError, ValueError) as exc:
                # Not ours to fix (storage dead-letters bad readings), and blocking the
                # partition would stop every alert.
                EVENTS_IN.labels(source, "unreadable").inc()
                log.error("unreadable record on %s@%d: %s", tp.topic, m.offset, exc)
        return parsed

    async def write(self, conn: AsyncConnection[DictRow], batch: Batch, prepared: Parsed) -> None:
        prepared.applied, prepared.duplicates = await service.process(
            conn, events=prepared.events, batches=prepared.batches, event_damping=self._damping
        )

    def committed(self, batch: Batch, prepared: Parsed) -> None:
        EVENTS_IN.labels("alerts", "processed").inc(len(prepared.events) - prepared.duplicates)
        EVENTS_IN.labels("alerts", "duplicate").inc(prepared.duplicates)
        EVENTS_IN.labels("readings", "processed").inc(len(prepared.batches))
        if prepared.applied is not None:
            service.count(prepared.applied)
            if prepared.applied.outbox:
                self._on_outbox()

    async def dead_letter(
        self, conn: AsyncConnection[DictRow], tp: TopicPartition, record: Record, reason: str
    ) -> None:
        raw = record.value or b""
        letter = DeadLetter(
            received_at=datetime.now(UTC),
            topic=f"kafka:{record.topic}",
            reason="alerts_rejected",
            detail=reason,
            payload=raw[:1024].decode("utf-8", "replace"),
            payload_size=len(raw),
        )
        await write_deadletters(conn, [(tp, record.offset, letter)])

    def discard(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        return {}

    def assigned(
        self, positions: Mapping[TopicPartition, Position]
    ) -> dict[TopicPartition, int | Start]:
        starts: dict[TopicPartition, int | Start] = {}
        for tp, pos in positions.items():
            if pos.next_offset is not None:
                starts[tp] = pos.next_offset
            elif tp.topic == ALERTS_TOPIC:
                starts[tp] = "beginning"  # every episode counts
            else:
                # Rules judge new readings: a first start does not replay a week of history.
                starts[tp] = "end"
        return starts

    def revoked(self, partitions: Collection[TopicPartition]) -> Work | None:
        return None  # every committed batch is in the database already

    def between(self, *, idle: bool) -> Work | None:
        overdue = time.monotonic() - self._last_tick >= self._s.max_tick_interval_s
        if not idle and not overdue:
            return None
        self._last_tick = time.monotonic()
        return Work(
            write=lambda conn: service.tick(conn, now=datetime.now(UTC)), committed=self._ticked
        )

    def _ticked(self, applied: Any) -> None:
        service.count(applied)
        if applied.outbox:
            self._on_outbox()
