"""The runtime's erasure guard on the real PostgreSQL, with the API's own erasure: it reports a
device's erasure once, forgets the records and voids the checkpoints from before it, and refuses
a transaction whose devices were erased since it last read (the runtime's use of it is
tests/shared/runtime/test_erasure_checkpoints.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from pydantic import SecretStr

from shared.db import Pool, create_pool
from shared.erasure import erase_device, erasures
from shared.runtime.erasures import ErasedMeanwhile, ErasureGuard
from shared.topics import READINGS_TOPICS, Domain

pytestmark = pytest.mark.integration


@asynccontextmanager
async def _pool(env: dict[str, str]) -> AsyncIterator[tuple[Pool, str]]:
    pool = create_pool(SecretStr(env["DATABASE_URL"]), max_size=2)
    await pool.open()
    device = f"guard-{uuid.uuid4().hex[:8]}"
    try:
        yield pool, device
    finally:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM device_erasures WHERE device_id = %s", (device,))
        await pool.close()


async def _erase(pool: Pool, device: str) -> None:
    async with pool.connection() as conn, conn.transaction():
        await erase_device(
            conn, device_id=device, topic=READINGS_TOPICS[Domain.ENERGY], erase_aggregates=True
        )


def test_an_erasure_is_reported_once_and_voids_what_came_before(
    stack_env: dict[str, str],
) -> None:
    async def run() -> None:
        async with _pool(stack_env) as (pool, device):
            guard = ErasureGuard(pool)
            assert await guard.read({device}) == []
            await _erase(pool, device)
            async with pool.connection() as conn:
                at = (await erasures(conn, [device]))[device]  # the database's own record

            assert await guard.read({device, "never-erased"}) == [device]
            assert await guard.read({device}) == []  # acted on already
            assert guard.forgets(device, received_at=at)
            assert not guard.forgets(device, received_at=at + timedelta(microseconds=1))
            assert not guard.forgets("never-erased", received_at=at)
            assert guard.voids(device, learnt_since=at - timedelta(seconds=1))
            assert guard.voids(device, learnt_since=None)  # of unknown age
            assert not guard.voids(device, learnt_since=at + timedelta(seconds=1))
            assert not guard.voids("never-erased", learnt_since=None)

    asyncio.run(run())


def test_a_transaction_refuses_devices_erased_since_the_guard_read(
    stack_env: dict[str, str],
) -> None:
    async def run() -> None:
        async with _pool(stack_env) as (pool, device):
            guard = ErasureGuard(pool)
            await guard.read({device})
            await _erase(pool, device)
            with pytest.raises(ErasedMeanwhile):
                async with pool.connection() as conn, conn.transaction():
                    await guard.hold(conn, {device})
            # Without the devices (the runtime's checkpoints outside a batch): the lock alone.
            async with pool.connection() as conn, conn.transaction():
                await guard.hold(conn, ())
            # Once read, the erasure is known: the batch replayed with it goes through.
            assert await guard.read({device}) == [device]
            async with pool.connection() as conn, conn.transaction():
                await guard.hold(conn, {device})

    asyncio.run(run())
