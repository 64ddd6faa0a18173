"""10,000 meters through one worker: memory stays bounded (least recently used states are
evicted) and an evicted device's model comes back from its checkpoint unchanged."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from services.energy.adapters.db import write_rows
from services.energy.domain.meter import EnergyProcessor, ScoreRow
from shared.db import create_pool
from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from tests.runtime_support import runtime_loop

pytestmark = pytest.mark.integration

METERS = 10_000
READINGS_EACH = 4
MAX_DEVICES = 1_000
# Documented in docs/runtime.md: a worker with 1,000 cached meters stays well under this.
RSS_GROWTH_BOUND_MB = 300


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _batch(device: str, ts: datetime, value: float) -> ReadingBatch:
    return ReadingBatch(
        device_id=device,
        domain=Domain.ENERGY,
        received_at=ts,
        readings=[Reading(ts=ts, metric="energy_kwh", value=value)],
    )


async def _scenario(stack_env: dict[str, str]) -> None:
    bootstrap = stack_env["KAFKA_BOOTSTRAP"]
    topic = f"test.memory.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    await admin.close()

    devices = [f"mem-{uuid.uuid4().hex[:6]}-{i}" for i in range(METERS)]
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    for k in range(READINGS_EACH):
        for i, d in enumerate(devices):
            await producer.send(
                topic,
                _batch(d, start + timedelta(minutes=15 * k), 1.0 + (i % 13) + k).to_bytes(),
                key=d.encode(),
            )
    await producer.flush()

    pool = create_pool(SecretStr(stack_env["DATABASE_URL"]), max_size=3)
    await pool.open()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"mem-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    proc = EnergyProcessor()
    captured: list[ScoreRow] = []

    async def sink(conn, rows):  # type: ignore[no-untyped-def]
        captured.extend(r for r in rows if isinstance(r, ScoreRow))
        await write_rows(conn, rows)

    group = f"mem-{uuid.uuid4().hex[:8]}"
    worker, loop = runtime_loop(
        consumer=consumer,
        pool=pool,
        processor=proc,
        sink=sink,
        group=group,
        topic=topic,
        batch_max_records=2000,
        batch_wait_ms=1000,
        max_devices=MAX_DEVICES,
    )
    await consumer.start()
    rss_before = _rss_mb()
    peak_cached = 0
    processed = 0
    try:
        while processed < METERS * READINGS_EACH:
            processed += await loop.poll_once()
            assert loop.failures == 0
            peak_cached = max(peak_cached, len(worker.cache))
        growth = _rss_mb() - rss_before
        assert peak_cached <= MAX_DEVICES
        assert growth < RSS_GROWTH_BOUND_MB, f"RSS grew by {growth:.0f} MB"

        # The first devices were evicted long ago: one more reading each, scored from their
        # checkpoints, must match a model that was never evicted.
        probe = devices[:20]
        assert not any(d in worker.cache for d in probe)
        last = start + timedelta(minutes=15 * READINGS_EACH)
        for d in probe:
            await producer.send(topic, _batch(d, last, 50.0).to_bytes(), key=d.encode())
        await producer.flush()
        got: dict[str, object] = {}
        while len(got) < len(probe):
            await loop.poll_once()
            got.update({r.device_id: r for r in captured if r.ts == last})
        for i, d in enumerate(devices[:20]):
            oracle = EnergyProcessor()
            state = oracle.new_state(d)
            for k in range(READINGS_EACH):
                oracle.process(
                    state,
                    device_id=d,
                    readings=[
                        Reading(
                            ts=start + timedelta(minutes=15 * k),
                            metric="energy_kwh",
                            value=1.0 + (i % 13) + k,
                        )
                    ],
                )
            want = [
                r
                for r in oracle.process(
                    state, device_id=d, readings=[Reading(ts=last, metric="energy_kwh", value=50.0)]
                ).rows
                if isinstance(r, ScoreRow)
            ]
            assert got[d] == want[0]
    finally:
        await consumer.stop()
        await producer.stop()
        await pool.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.delete_topics([topic])
        await admin.close()


def test_ten_thousand_meters_stay_within_the_memory_bound(stack_env: dict[str, str]) -> None:
    asyncio.run(_scenario(stack_env))
