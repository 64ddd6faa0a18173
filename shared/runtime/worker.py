"""The runtime: a consumer-group worker with per-device state and exactly-once effects.

One batch (`getmany`) = one database transaction holding
  1. the rows the processor derived from the batch,
  2. the model checkpoints of the devices it touched,
  3. the alert events to emit (outbox; a relay sends them to Kafka afterwards),
  4. the next offset of every partition in the batch.
Offsets live in the database, not in Kafka: on assignment the worker seeks to them, so a crash at
any point replays exactly the readings whose effects were not committed, from the checkpoints
that match them (aiokafka's local_state_consumer example, with the state in PostgreSQL).

Late and out-of-order readings: each device has a clock (the newest reading it learned from).
Readings at or before the clock are not learned from or scored (a backlog uploaded late is
stored by the storage service all the same); they are counted in
`townpulse_runtime_late_readings_total`. A batch's readings for one device are sorted by time.

Memory: at most `max_devices` states are kept, least recently used first out. Every touched
state is checkpointed with its batch, so evicting costs nothing but a reload later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from prometheus_client import Counter, Gauge, Histogram
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import ValidationError

from shared.db import Pool
from shared.runtime.processor import DeviceProcessor, Effects
from shared.schemas import ReadingBatch

log = logging.getLogger(__name__)

S = TypeVar("S")

READINGS = Counter("townpulse_runtime_readings_total", "Readings processed", ["group"])
LATE = Counter(
    "townpulse_runtime_late_readings_total", "Readings older than the model clock", ["group"]
)
UNREADABLE = Counter("townpulse_runtime_unreadable_total", "Records matching no schema", ["group"])
DISCARDED = Counter(
    "townpulse_runtime_discarded_checkpoints_total",
    "Checkpoints of another model version, discarded",
    ["group"],
)
EVICTED = Counter("townpulse_runtime_evicted_total", "Device states evicted from memory", ["group"])
CACHED = Gauge("townpulse_runtime_cached_devices", "Device states in memory", ["group"])
BATCH_SECONDS = Histogram(
    "townpulse_runtime_batch_seconds",
    "Processing + transaction time per batch",
    ["group"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_SENT = Counter("townpulse_runtime_outbox_sent_total", "Events relayed to Kafka", ["group"])


@dataclass
class DeviceSlot(Generic[S]):
    state: S
    clock: datetime | None
    partition: TopicPartition | None


class StreamWorker(Generic[S]):
    """Runs a `DeviceProcessor` over readings topics, exactly once per reading."""

    def __init__(
        self,
        *,
        processor: DeviceProcessor[S],
        pool: Pool,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        group_id: str,
        topics: Iterable[str],
        max_devices: int = 2000,
        batch_max_records: int = 2000,
        batch_wait_ms: int = 200,
    ) -> None:
        self.processor = processor
        self._pool = pool
        self._consumer = consumer
        self._producer = producer
        self.group_id = group_id
        self._topics = list(topics)
        self.max_devices = max_devices
        self._batch_max = batch_max_records
        self._batch_wait_ms = batch_wait_ms
        self.cache: OrderedDict[str, DeviceSlot[S]] = OrderedDict()
        # Held while a batch is processed and committed; a revocation waits for it, so the next
        # owner of a partition reads offsets and checkpoints that include every effect.
        self._lock = asyncio.Lock()
        self._outbox_ready = asyncio.Event()
        self.batches = 0

    # ---- lifecycle ----------------------------------------------------------------------------

    def subscribe(self) -> None:
        self._consumer.subscribe(self._topics, listener=_Rebalance(self))

    async def run(self) -> None:
        failures = 0
        while True:
            records = await self._consumer.getmany(
                timeout_ms=self._batch_wait_ms, max_records=self._batch_max
            )
            if not records:
                continue
            try:
                await self.handle(records)
                failures = 0
            except Exception:
                # handle() has rewound to the stored offsets: the batch is replayed, not lost.
                failures += 1
                log.exception("batch failed; replaying from the stored offsets")
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))

    async def relay(self) -> None:
        """Send outbox events to Kafka, oldest first; delete them once Kafka has them."""
        while True:
            sent = await self.relay_once()
            if sent == 0:
                self._outbox_ready.clear()
                # Events are written with batches (which set the event); the timeout also picks
                # up what another instance left behind.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outbox_ready.wait(), timeout=1.0)

    async def relay_once(self, limit: int = 500) -> int:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT id, topic, key, value FROM runtime_outbox ORDER BY id LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                (limit,),
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

    # ---- one batch ----------------------------------------------------------------------------

    async def handle(self, records: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with self._lock:
            assigned = self._consumer.assignment()
            # Records of partitions revoked while they were fetched belong to the next owner.
            records = {tp: msgs for tp, msgs in records.items() if tp in assigned and msgs}
            if not records:
                return
            per_device: dict[str, list[ReadingBatch]] = {}
            where: dict[str, TopicPartition] = {}
            for tp, msgs in records.items():
                for m in msgs:
                    try:
                        batch = ReadingBatch.from_bytes(m.value)
                    except (ValidationError, ValueError):
                        # The storage service dead-letters these; here they are only skipped.
                        UNREADABLE.labels(self.group_id).inc()
                        continue
                    per_device.setdefault(batch.device_id, []).append(batch)
                    where[batch.device_id] = tp
            offsets = {tp: msgs[-1].offset + 1 for tp, msgs in records.items()}
            await self._load_missing(per_device.keys(), where)
            effects = Effects()
            touched: list[str] = []
            for device_id, batches in per_device.items():
                slot = self.cache[device_id]
                readings = sorted(
                    (r for b in batches for r in b.readings), key=lambda r: (r.ts, r.metric)
                )
                fresh = [r for r in readings if slot.clock is None or r.ts > slot.clock]
                if len(fresh) < len(readings):
                    LATE.labels(self.group_id).inc(len(readings) - len(fresh))
                if not fresh:
                    continue
                effects.extend(
                    self.processor.process(slot.state, device_id=device_id, readings=fresh)
                )
                slot.clock = fresh[-1].ts
                touched.append(device_id)
                READINGS.labels(self.group_id).inc(len(fresh))
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    await self.processor.write(conn, effects.rows)
                    await self._checkpoint(conn, touched)
                    await self._enqueue(conn, effects)
                    await self._save_offsets(conn, offsets)
            except BaseException:
                # The in-memory states are ahead of the database now: forget them, and replay
                # from the stored offsets and checkpoints.
                for tp in offsets:
                    self._forget_partition(tp)
                await self._seek_to_stored(list(offsets))
                raise
            self._evict()
            self.batches += 1
        if effects.events:
            self._outbox_ready.set()
        BATCH_SECONDS.labels(self.group_id).observe(loop.time() - started)

    async def _load_missing(
        self, device_ids: Iterable[str], where: dict[str, TopicPartition]
    ) -> None:
        missing = [d for d in device_ids if d not in self.cache]
        for d in device_ids:
            if d in self.cache:
                self.cache.move_to_end(d)
        if not missing:
            return
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT device_id, model_version, state, clock FROM runtime_state "
                "WHERE group_id = %s AND device_id = ANY(%s)",
                (self.group_id, missing),
            )
            stored = {r["device_id"]: r for r in await cur.fetchall()}
        for device_id in missing:
            row = stored.get(device_id)
            slot: DeviceSlot[S] | None = None
            if row is not None:
                if row["model_version"] == self.processor.model_version:
                    # Checkpoints are written only by this service into its own table.
                    state = pickle.loads(bytes(row["state"]))  # noqa: S301
                    slot = DeviceSlot(state=state, clock=row["clock"], partition=where[device_id])
                else:
                    DISCARDED.labels(self.group_id).inc()
                    log.warning(
                        "discarding checkpoint of another model version",
                        extra={
                            "device_id": device_id,
                            "stored": row["model_version"],
                            "current": self.processor.model_version,
                        },
                    )
            if slot is None:
                slot = DeviceSlot(
                    state=self.processor.new_state(device_id),
                    clock=row["clock"] if row is not None else None,
                    partition=where[device_id],
                )
            self.cache[device_id] = slot

    async def _checkpoint(self, conn: AsyncConnection[DictRow], device_ids: list[str]) -> None:
        if not device_ids:
            return
        rows = [
            (
                self.group_id,
                d,
                self.processor.model_version,
                pickle.dumps(self.cache[d].state, protocol=pickle.HIGHEST_PROTOCOL),
                self.cache[d].clock,
            )
            for d in device_ids
        ]
        async with conn.cursor() as cur:
            await cur.executemany(
                """
                INSERT INTO runtime_state (group_id, device_id, model_version, state, clock)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (group_id, device_id) DO UPDATE SET
                    model_version = EXCLUDED.model_version, state = EXCLUDED.state,
                    clock = EXCLUDED.clock, updated_at = now()
                """,
                rows,
            )

    async def _enqueue(self, conn: AsyncConnection[DictRow], effects: Effects) -> None:
        if not effects.events:
            return
        from shared.topics import ALERTS_TOPIC

        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO runtime_outbox (topic, key, value) VALUES (%s, %s, %s)",
                [(ALERTS_TOPIC, e.device_id.encode(), e.to_bytes()) for e in effects.events],
            )

    async def _save_offsets(
        self, conn: AsyncConnection[DictRow], offsets: dict[TopicPartition, int]
    ) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(
                """
                INSERT INTO runtime_offsets (group_id, topic, partition, next_offset)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (group_id, topic, partition) DO UPDATE
                    SET next_offset = EXCLUDED.next_offset
                """,
                [(self.group_id, tp.topic, tp.partition, o) for tp, o in offsets.items()],
            )

    def _evict(self) -> None:
        while len(self.cache) > self.max_devices:
            self.cache.popitem(last=False)
            EVICTED.labels(self.group_id).inc()
        CACHED.labels(self.group_id).set(len(self.cache))

    def _forget_partition(self, tp: TopicPartition) -> None:
        for device_id in [d for d, s in self.cache.items() if s.partition == tp]:
            del self.cache[device_id]
        CACHED.labels(self.group_id).set(len(self.cache))

    # ---- rebalancing ----------------------------------------------------------------------------

    async def on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Waiting for the lock lets the batch in progress commit: its checkpoints and offsets are
        # in the database before another worker reads them.
        async with self._lock:
            for tp in revoked:
                self._forget_partition(tp)

    async def on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._seek_to_stored(list(assigned))

    async def _seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT topic, partition, next_offset FROM runtime_offsets WHERE group_id = %s",
                (self.group_id,),
            )
            stored = {(r["topic"], r["partition"]): r["next_offset"] for r in await cur.fetchall()}
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: StreamWorker[Any]) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._worker.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._worker.on_assigned(assigned)
