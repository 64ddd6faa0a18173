"""The outbox relay sends what the runtime writes, and a row it could never send blocks nothing."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from pydantic import SecretStr

from shared.db import create_pool
from shared.kafka import Producer
from shared.runtime.outbox import OutboxRelay
from shared.topics import ALERTS_TOPIC

pytestmark = pytest.mark.integration


async def _scenario(env: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        # First in line: a row for a topic that does not exist.
        conn.execute(
            "INSERT INTO runtime_outbox (topic, key, value) VALUES ('no.such.topic', %s, 'x')",
            (f"foreign-{tag}".encode(),),
        )
        conn.execute(
            "INSERT INTO runtime_outbox (topic, key, value) VALUES (%s, %s, 'y')",
            (ALERTS_TOPIC, f"ours-{tag}".encode()),
        )
    pool = create_pool(SecretStr(env["DATABASE_URL"]), max_size=2)
    await pool.open()
    producer = Producer(env["KAFKA_BOOTSTRAP"], client_id=f"relay-test-{tag}")
    await producer.start()
    try:
        relay = OutboxRelay(pool=pool, producer=producer, group_id="relay-test")
        async with asyncio.timeout(30):
            while await relay.relay_once() > 0:
                pass
    finally:
        await producer.stop()
        await pool.close()
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        left = {
            bytes(r[0]).decode()
            for r in conn.execute(
                "SELECT key FROM runtime_outbox WHERE key IN (%s, %s)",
                (f"foreign-{tag}".encode(), f"ours-{tag}".encode()),
            )
        }
        conn.execute("DELETE FROM runtime_outbox WHERE key = %s", (f"foreign-{tag}".encode(),))
    assert left == {f"foreign-{tag}"}


def test_a_row_for_another_topic_does_not_block_the_relay(stack_env: dict[str, str]) -> None:
    asyncio.run(_scenario(stack_env))
