"""The end-to-end benchmark's arrival poller on the stack's PostgreSQL: it sees every row of its
devices once, also one committed late with a time below other devices' marks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bench.e2e import ArrivalPoller
from tests.data_rows import add_reading, connect
from tests.support import until
from townpulse.stack import Stack

pytestmark = pytest.mark.integration


async def test_poller_sees_late_rows_once_and_nothing_before_its_start(stack: Stack) -> None:
    a, b, other = (f"poll-{uuid.uuid4().hex[:10]}" for _ in range(3))
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    at = [t0 + timedelta(minutes=i) for i in range(5)]
    url = stack.database_url()
    # The poller reads tuples, as on its own connection in a run.
    async with (
        await connect(url) as conn,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as db,
    ):
        try:
            await add_reading(conn, a, at[0])  # before the poller's start: not its business
            await add_reading(conn, a, at[1])
            await add_reading(conn, b, at[3])
            await add_reading(conn, other, at[2])  # not a sampled device
            poller = ArrivalPoller(url, "readings", [a, b], at[0], 0.05)
            await poller.poll(db)
            assert set(poller.seen) == {(a, at[1]), (b, at[3])}
            assert poller.received[(b, at[3])] == at[3]
            first = poller.starts[-1]

            # Committed after b's mark, with a time below it: a's next reading, late.
            await add_reading(conn, a, at[2])
            await poller.poll(db)
            assert set(poller.seen) == {(a, at[1]), (b, at[3]), (a, at[2])}
            assert poller.seen[(a, at[2])] == poller.starts[-1] > first
            # Rows seen once keep the time they were first seen.
            assert poller.seen[(a, at[1])] == poller.seen[(b, at[3])] == first
            assert poller.marks == [at[2], at[3]]
        finally:
            await conn.execute("DELETE FROM readings WHERE device_id = ANY(%s)", ([a, b, other],))


async def test_poller_looks_once_more_when_stopped(stack: Stack) -> None:
    """The phase stops it once every row is counted: a row committed after its last look is
    still seen."""
    device = f"poll-{uuid.uuid4().hex[:10]}"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    url = stack.database_url()
    async with await connect(url) as conn:
        try:
            poller = ArrivalPoller(url, "readings", [device], t0, interval_s=3600)
            task = asyncio.create_task(poller.run())
            await until(lambda: poller.starts, what="the poller's first look")
            await add_reading(conn, device, t0 + timedelta(minutes=1))
            poller.stop()
            await task
            assert set(poller.seen) == {(device, t0 + timedelta(minutes=1))}
        finally:
            await conn.execute("DELETE FROM readings WHERE device_id = %s", (device,))
