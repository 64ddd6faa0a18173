"""The runtime's outbox: alert events written in the batch's transaction, sent to Kafka after.

A batch's events are rows of `runtime_outbox`, committed with everything else the batch did
(`enqueue`); the relay sends them to Kafka, oldest first, and deletes them once Kafka has them.
A crash between the two re-sends: consumers deduplicate by event id (docs/runtime.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from prometheus_client import Counter
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from shared.db import Pool
from shared.kafka import Producer
from shared.schemas import AlertEvent
from shared.stream.retry import DEFAULT_BACKOFF
from shared.topics import ALERTS_TOPIC

log = logging.getLogger(__name__)

# What the relay sends from the outbox: the events the runtime writes there.
RELAYED_TOPICS = (ALERTS_TOPIC,)

OUTBOX_SENT = Counter("townpulse_runtime_outbox_sent_total", "Events relayed to Kafka", ["group"])


async def enqueue(conn: AsyncConnection[DictRow], events: Sequence[AlertEvent]) -> None:
    """The events, in the caller's transaction."""
    if not events:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO runtime_outbox (topic, key, value) VALUES (%s, %s, %s)",
            [(ALERTS_TOPIC, e.device_id.encode(), e.to_bytes()) for e in events],
        )


class OutboxRelay:
    """Sends outbox events to Kafka, oldest first; deletes them once Kafka has them."""

    def __init__(self, *, pool: Pool, producer: Producer, group_id: str) -> None:
        self._pool = pool
        self._producer = producer
        self.group_id = group_id
        self._ready = asyncio.Event()

    def wake(self) -> None:
        self._ready.set()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                sent = await self.relay_once()
                failures = 0
            except Exception as exc:
                # Kafka or PostgreSQL away: the events stay in the outbox until they return.
                with contextlib.suppress(Exception):
                    await self._producer.reset_if_fatal(exc)
                delay = DEFAULT_BACKOFF.delay(failures)
                failures += 1
                log.error("outbox relay failed, retry in %.1f s: %r", delay, exc)
                await asyncio.sleep(delay)
                continue
            if sent == 0:
                self._ready.clear()
                # Events are written with batches (which set the event); the timeout also picks
                # up what another instance left behind.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), timeout=1.0)

    async def relay_once(self, limit: int = 500) -> int:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                # Only the topics the runtime writes: a row of any other (written by hand, or
                # by a newer version) could never be sent, and would block every event behind
                # it. It stays until its retention ends.
                "SELECT id, topic, key, value FROM runtime_outbox WHERE topic = ANY(%s) "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (list(RELAYED_TOPICS), limit),
            )
            rows = await cur.fetchall()
            if not rows:
                return 0
            futures = [
                await self._producer.send(
                    r["topic"], bytes(r["value"]), key=bytes(r["key"]) if r["key"] else None
                )
                for r in rows
            ]
            await asyncio.gather(*futures)
            # A crash here re-sends these events: consumers deduplicate by event_id.
            await conn.execute(
                "DELETE FROM runtime_outbox WHERE id = ANY(%s)", ([r["id"] for r in rows],)
            )
        OUTBOX_SENT.labels(self.group_id).inc(len(rows))
        return len(rows)
