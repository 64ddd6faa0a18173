"""Helpers for the domain services' runtime tests: feed Kafka, replay the processor, compare.

The oracle is the service's own processor run here, uninterrupted, on the same readings; what
the service stored after crashes or rebalances must equal it value by value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.db import Pool
from shared.runtime.checkpoints import CheckpointKey
from shared.runtime.processor import DeviceProcessor
from shared.runtime.worker import DeviceRuntime, RowSink
from shared.schemas import AlertEvent, Reading, ReadingBatch
from shared.stream.loop import StreamLoop
from shared.stream.offsets import DbOffsets

Key = tuple[str, datetime]
Series = dict[str, list[ReadingBatch]]

# One key for every runtime of a test, as the domain services share theirs across restarts.
TEST_CHECKPOINT_KEY = CheckpointKey(b"test-checkpoint-key-of-32-bytes!")


def produce(bootstrap: str, topic: str, batches: list[ReadingBatch]) -> None:
    """Send batches keyed by device, as the gateway does, and wait until Kafka has them all."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(topic, b.to_bytes(), key=b.device_id.encode()) for b in batches
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(send())


def interleave(series: Series, lo: int, hi: int) -> list[ReadingBatch]:
    """Readings lo..hi of every device, interleaved in time as devices would send them."""
    return [s[i] for i in range(lo, hi) for s in series.values()]


def oracle(
    processor: Any, series: Series, *, row_type: type, values: Callable[[Any], tuple[Any, ...]]
) -> dict[Key, tuple[Any, ...]]:
    """The rows an uninterrupted run of `processor` derives, keyed by (device, ts)."""
    rows: dict[Key, tuple[Any, ...]] = {}
    for device_id, batches in series.items():
        state = processor.new_state(device_id)
        for b in batches:
            effects = processor.process(state, device_id=device_id, readings=list(b.readings))
            for r in effects.rows:
                if isinstance(r, row_type):
                    rows[(r.device_id, r.ts)] = values(r)
    return rows


def stored(db: str, sql: str, device_ids: list[str]) -> dict[Key, tuple[Any, ...]]:
    """Rows of `sql` (selecting device_id, ts, values... WHERE device_id = ANY(%s))."""
    with psycopg.connect(db) as conn:
        rows = conn.execute(sql, (device_ids,)).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def drive(
    processor: Any,
    sim_readings: Iterable[Any],
    *,
    since: datetime,
    skip: Callable[[Any], bool] = lambda r: False,
) -> tuple[list[AlertEvent], dict[str, Any]]:
    """Feed simulator readings to a processor one by one, as the runtime would.

    Returns the alert events at or after `since` and each device's final state; `skip` drops
    readings (a device made silent for a while).
    """
    states: dict[str, Any] = {}
    alerts: list[AlertEvent] = []
    for r in sim_readings:
        if skip(r):
            continue
        state = states.get(r.device.id)
        if state is None:
            state = states[r.device.id] = processor.new_state(r.device.id)
        readings = [Reading(ts=r.ts, metric=k, value=v) for k, v in r.metrics.items()]
        effects = processor.process(state, device_id=r.device.id, readings=readings)
        alerts.extend(e for e in effects.events if e.ts >= since)
    return alerts, states


def assert_stored_once(
    db: str,
    sql: str,
    device_ids: list[str],
    expected: dict[Key, tuple[Any, ...]],
    *,
    timeout: float,
    what: str,
) -> None:
    """Wait until the devices have as many rows as `expected`, then require exactly those."""
    from tests.support import wait_for

    wait_for(lambda: len(stored(db, sql, device_ids)) == len(expected), timeout=timeout, what=what)
    assert stored(db, sql, device_ids) == expected


def runtime_loop(
    *,
    consumer: AIOKafkaConsumer,
    pool: Pool,
    processor: DeviceProcessor[Any],
    sink: RowSink,
    group: str,
    topic: str,
    batch_max_records: int,
    batch_wait_ms: int,
    **runtime: Any,
) -> tuple[DeviceRuntime[Any], StreamLoop]:
    """A domain worker on the stream core, as shared/runtime/service.py wires it, subscribed to
    `topic`; `runtime` are DeviceRuntime's own settings (max_devices, checkpoint_*...)."""
    offsets = DbOffsets(pool=pool, consumer=consumer, group_id=group)
    runtime.setdefault("checkpoint_key", TEST_CHECKPOINT_KEY)
    worker: DeviceRuntime[Any] = DeviceRuntime(
        processor=processor, sink=sink, pool=pool, offsets=offsets, group_id=group, **runtime
    )
    loop = StreamLoop(
        consumer=consumer,
        pool=pool,
        handler=worker,
        offsets=offsets,
        group_id=group,
        batch_max_records=batch_max_records,
        batch_wait_ms=batch_wait_ms,
    )
    loop.subscribe([topic])
    return worker, loop
