"""The gateway's memory of confirmed readings, seeded at start from the readings topics' tail.

A gateway killed (SIGKILL, OOM) after Kafka took a record and before its PUBACK reached the
broker gets that message again when it reconnects; its in-process memory of confirmed readings
died with it. The records it produced last are on Kafka: reading back the last few minutes of
every readings topic, before the MQTT subscription starts, gives the memory back.

The same read-back tells the gateway, after Kafka failed some of its records, which of them
Kafka had written all the same (a stopped broker that took a record but never answered): only
the others are produced again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.gateway.uplinks import Recent, readings_key
from shared.schemas import ReadingBatch

log = logging.getLogger(__name__)


async def seed_confirmed(
    confirmed: Recent[bytes],
    *,
    bootstrap: str,
    client_id: str,
    topics: Iterable[str],
    partitions_for: Callable[[str], Awaitable[set[int]]],
    window_s: float,
    within_s: float,
) -> int:
    """Remember the readings records of the last `window_s` seconds; returns how many.

    Bounded by `within_s`: a slow or unreachable Kafka must not keep the gateway from starting
    (it then starts with what it read, and a redelivery of the rest is produced again and
    stored once)."""
    if window_s <= 0:
        return 0
    seeded = Counted()
    try:
        async with asyncio.timeout(within_s):
            await read_back(
                confirmed,
                bootstrap=bootstrap,
                client_id=client_id,
                topics=topics,
                partitions_for=partitions_for,
                since_s=time.time() - window_s,
                counted=seeded,
            )
    except (TimeoutError, KafkaError, OSError) as exc:
        log.warning(
            "confirmed readings seeded only in part (%d records): %r; a redelivery of the"
            " others is produced again (and stored once)",
            seeded.n,
            exc,
        )
    return seeded.n


class Counted:
    """How many records a read-back remembered, still known when it is cut short."""

    def __init__(self) -> None:
        self.n = 0


async def read_back(
    confirmed: Recent[bytes],
    *,
    bootstrap: str,
    client_id: str,
    topics: Iterable[str],
    partitions_for: Callable[[str], Awaitable[set[int]]],
    since_s: float,
    counted: Counted | None = None,
) -> int:
    """Remember every readings record Kafka holds from `since_s` (epoch seconds) to the end of
    each readings topic, as it is now; returns how many.

    Raises when Kafka cannot be read (the caller bounds the time): a caller deciding what to
    produce again must not act on half of the answer."""
    counted = counted if counted is not None else Counted()
    # No group: nothing is committed, and no rebalance to wait for.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 2**20,
    )
    try:
        await consumer.start()
        # The producer's metadata: a consumer without a subscription keeps none.
        tps = [TopicPartition(t, p) for t in topics for p in await partitions_for(t)]
        if not tps:
            return 0
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, int(since_s * 1000)))
        ends = await consumer.end_offsets(tps)
        todo = {
            tp: ends[tp]
            for tp in tps
            if (at := starts.get(tp)) is not None and at.offset < ends[tp]
        }
        if not todo:
            return 0
        consumer.assign(list(todo))
        for tp in todo:
            found = starts[tp]
            assert found is not None
            consumer.seek(tp, found.offset)
        while todo:
            got = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in got.values():
                for record in records:
                    if record.value is None:
                        continue
                    try:
                        batch = ReadingBatch.from_bytes(record.value)
                    except ValidationError:
                        continue
                    confirmed.add(readings_key(batch))
                    counted.n += 1
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    del todo[tp]
    finally:
        await consumer.stop()
    return counted.n
