"""An erasure is never undone by a checkpoint, not even one in flight while it commits.

A model in memory that learnt from a device's readings before an operator erased the device is
not saved again (its row would bring back what the erasure removed, and a re-registered device
would be scored by it: CI saw exactly that once, tests/services/energy/test_energy_runtime.py).
An erasure waits for a checkpoint in flight and then removes it; a checkpoint during an erasure
waits for it and then sees it; a batch whose devices were erased after its models learnt fails
and is replayed. A row saved without those guards is not restored. A model learnt after the
erasure is saved and restored as any other. On the real PostgreSQL, with the API's own erasure.
"""

from __future__ import annotations

import asyncio
import pickle
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import SecretStr

from services.energy.adapters.db import write_rows
from services.energy.domain.meter import EnergyProcessor, MeterState
from shared.db import Pool, create_pool
from shared.erasure import erase_device, erasures
from shared.runtime.worker import DeviceRuntime, DeviceSlot, ErasedMeanwhile, Prepared
from shared.schemas import Reading
from shared.stream.loop import Batch
from shared.topics import READINGS_TOPICS, Domain
from tests.runtime_support import TEST_CHECKPOINT_KEY
from tests.support import until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, tzinfo=UTC)
TP = TopicPartition("test.erasure-checkpoints", 0)


def _runtime(pool: Pool, group: str) -> DeviceRuntime[MeterState]:
    # Only the checkpoint methods are exercised: no stream, so no offsets store.
    return DeviceRuntime(
        processor=EnergyProcessor(),
        sink=write_rows,
        pool=pool,
        offsets=None,  # type: ignore[arg-type]
        group_id=group,
        checkpoint_key=TEST_CHECKPOINT_KEY,
    )


def _learnt(runtime: DeviceRuntime[MeterState], device: str, *, since: datetime) -> None:
    """A dirty slot whose model learnt 300 readings received at `since`."""
    state = runtime.processor.new_state(device)
    readings = [
        Reading(ts=T0 + timedelta(minutes=15 * i), metric="energy_kwh", value=5.0 + i % 9)
        for i in range(300)
    ]
    runtime.processor.process(state, device_id=device, readings=readings)
    runtime.cache[device] = DeviceSlot(
        state=state, clock=readings[-1].ts, partition=TP, applied=300, since=since
    )


@asynccontextmanager
async def _pool(env: dict[str, str]) -> AsyncIterator[tuple[Pool, str, str]]:
    pool = create_pool(SecretStr(env["DATABASE_URL"]), max_size=4)
    await pool.open()
    group, device = f"erase-{uuid.uuid4().hex[:8]}", f"dev-{uuid.uuid4().hex[:8]}"
    try:
        yield pool, group, device
    finally:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM runtime_state WHERE group_id = %s", (group,))
            await conn.execute("DELETE FROM device_erasures WHERE device_id = %s", (device,))
        await pool.close()


async def _save(runtime: DeviceRuntime[Any], pool: Pool, device: str) -> None:
    async with pool.connection() as conn, conn.transaction():
        await runtime._save_states(conn, [device])


async def _erase_in(conn: AsyncConnection[DictRow], device: str) -> datetime:
    await erase_device(
        conn, device_id=device, topic=READINGS_TOPICS[Domain.ENERGY], erase_aggregates=True
    )
    return (await erasures(conn, [device]))[device]


async def _erase(pool: Pool, device: str) -> datetime:
    async with pool.connection() as conn, conn.transaction():
        return await _erase_in(conn, device)


async def _rows(pool: Pool, group: str, device: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT learnt_since FROM runtime_state WHERE group_id = %s AND device_id = %s",
            (group, device),
        )
        return list(await cur.fetchall())


async def _restored(pool: Pool, group: str, device: str) -> MeterState:
    """What a runtime that has just read the device's erasures loads for it."""
    reader = _runtime(pool, group)
    await reader._read_erasures({device})
    await reader._load_missing({device: TP})
    return reader.cache[device].state


def test_a_model_learnt_before_the_erasure_is_not_saved_again(stack_env: dict[str, str]) -> None:
    async def run() -> None:
        async with _pool(stack_env) as (pool, group, device):
            runtime = _runtime(pool, group)
            _learnt(runtime, device, since=datetime.now(UTC) - timedelta(minutes=5))
            await _save(runtime, pool, device)
            assert len(await _rows(pool, group, device)) == 1  # the save works at all

            await _erase(pool, device)
            assert await _rows(pool, group, device) == []
            # The runtime has not read the erasure yet; its interval checkpoint comes due.
            await _save(runtime, pool, device)
            assert await _rows(pool, group, device) == []
            assert (await _restored(pool, group, device)).detector.seen == 0

    asyncio.run(run())


def test_a_row_that_raced_the_erasure_is_not_restored(stack_env: dict[str, str]) -> None:
    async def run() -> None:
        async with _pool(stack_env) as (pool, group, device):
            erased_at = await _erase(pool, device)
            runtime = _runtime(pool, group)
            _learnt(runtime, device, since=erased_at - timedelta(seconds=1))
            # What a save that started before the erasure committed would leave: the statement's
            # own check cannot see an erasure committed after it began.
            async with pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO runtime_state (group_id, device_id, model_version, state, clock,"
                    " applied_offset, learnt_since) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        group,
                        device,
                        runtime.processor.model_version,
                        pickle.dumps(runtime.cache[device].state),
                        runtime.cache[device].clock,
                        300,
                        erased_at - timedelta(seconds=1),
                    ),
                )
            restored = await _restored(pool, group, device)
            assert restored.detector.seen == 0
            assert runtime.cache[device].state.detector.seen > 0  # it was a learnt model

    asyncio.run(run())


def test_a_model_learnt_after_the_erasure_is_saved_and_restored(
    stack_env: dict[str, str],
) -> None:
    async def run() -> None:
        async with _pool(stack_env) as (pool, group, device):
            erased_at = await _erase(pool, device)
            runtime = _runtime(pool, group)
            _learnt(runtime, device, since=erased_at + timedelta(seconds=1))
            await _save(runtime, pool, device)
            assert [r["learnt_since"] for r in await _rows(pool, group, device)] == [
                erased_at + timedelta(seconds=1)
            ]
            restored = await _restored(pool, group, device)
            assert restored.detector.seen == runtime.cache[device].state.detector.seen > 0

    asyncio.run(run())


async def _waiting_on_erasure_lock(pool: Pool) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid = 7310 AND objid = 3"
        )
        row = await cur.fetchone()
    return row is not None and row["n"] > 0


async def _second_waits_for_first(
    pool: Pool,
    first: Callable[[AsyncConnection[DictRow]], Awaitable[Any]],
    second: Callable[[], Awaitable[Any]],
) -> None:
    """`first` in a transaction kept open until `second`, started meanwhile, waits for the
    erasure lock (pg_locks says so); then `first` commits and `second` goes on."""
    async with pool.connection() as conn, conn.transaction():
        await first(conn)
        task = asyncio.create_task(second())
        await until(lambda: _waiting_on_erasure_lock(pool), within_s=10, what="a lock wait")
        assert not task.done()
    await task


def test_an_erasure_waits_for_a_checkpoint_in_flight_then_erases_it(
    stack_env: dict[str, str],
) -> None:
    async def run() -> None:
        async with _pool(stack_env) as (pool, group, device):
            runtime = _runtime(pool, group)
            _learnt(runtime, device, since=datetime.now(UTC) - timedelta(minutes=5))
            await _second_waits_for_first(
                pool,
                lambda conn: runtime._save_states(conn, [device]),
                lambda: _erase(pool, device),
            )
            # The checkpoint committed first; the erasure then removed it.
            assert await _rows(pool, group, device) == []

    asyncio.run(run())


def test_a_checkpoint_during_an_erasure_waits_for_it_and_is_not_saved(
    stack_env: dict[str, str],
) -> None:
    async def run() -> None:
        async with _pool(stack_env) as (pool, group, device):
            runtime = _runtime(pool, group)
            _learnt(runtime, device, since=datetime.now(UTC) - timedelta(minutes=5))
            await _second_waits_for_first(
                pool, lambda conn: _erase_in(conn, device), lambda: _save(runtime, pool, device)
            )
            # The checkpoint saw the erasure committed while it waited.
            assert await _rows(pool, group, device) == []

    asyncio.run(run())


def test_a_batch_that_raced_an_erasure_fails_until_the_runtime_knows_of_it(
    stack_env: dict[str, str],
) -> None:
    async def run() -> None:
        async with _pool(stack_env) as (pool, group, device):
            runtime = _runtime(pool, group)
            _learnt(runtime, device, since=datetime.now(UTC) - timedelta(minutes=5))
            await _erase(pool, device)  # after the batch's prepare(), before its write()
            prepared = Prepared(devices={device})
            with pytest.raises(ErasedMeanwhile):
                async with pool.connection() as conn, conn.transaction():
                    await runtime.write(conn, Batch(), prepared)
            # The replay's prepare() reads the erasure: its write() goes through.
            await runtime._read_erasures({device})
            assert device not in runtime.cache
            async with pool.connection() as conn, conn.transaction():
                await runtime.write(conn, Batch(), Prepared(devices={device}))

    asyncio.run(run())
