"""The stream loop's watchdog against the real Kafka and PostgreSQL: a loop stuck in an await,
or a consumer that fetches nothing while records wait, ends the loop with `Stalled` (its
service then exits and is started again); an idle consumer with nothing waiting is left alone."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from shared.db import create_pool
from shared.stream.loop import Stalled, StreamLoop, Work
from shared.stream.offsets import DbOffsets
from tests.shared.stream.test_stream_core import TableHandler, _topic

pytestmark = pytest.mark.integration

STALL_S = 2.0


class HangingHandler(TableHandler):
    """Its periodic work never returns once `hang` is set: a loop stuck in an await."""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.hang = False

    def between(self, *, idle: bool) -> Work | None:
        if not self.hang:
            return None

        async def forever(conn: object) -> None:
            await asyncio.Event().wait()

        return Work(write=forever)


@asynccontextmanager
async def _loop(
    env: dict[str, str], handler: TableHandler, values: list[bytes]
) -> AsyncIterator[tuple[StreamLoop, AIOKafkaConsumer]]:
    topic = await _topic(env["KAFKA_BOOTSTRAP"], values)
    pool = create_pool(SecretStr(env["DATABASE_URL"]), max_size=2)
    await pool.open()
    group = f"watchdog-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=env["KAFKA_BOOTSTRAP"],
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    loop = StreamLoop(
        consumer=consumer,
        pool=pool,
        handler=handler,
        offsets=DbOffsets(pool=pool, consumer=consumer, group_id=group),
        group_id=group,
        batch_max_records=500,
        batch_wait_ms=200,
        stall_s=STALL_S,
    )
    loop.subscribe([topic])
    await consumer.start()
    try:
        yield loop, consumer
    finally:
        await consumer.stop()
        await pool.close()


async def _stalls(run: Callable[[], Any]) -> Stalled:
    with pytest.raises(ExceptionGroup) as caught:
        async with asyncio.timeout(60):
            await run()
    (stalled,) = caught.value.exceptions
    assert isinstance(stalled, Stalled)
    return stalled


@pytest.fixture
def table(stack_env: dict[str, str]) -> Any:
    import psycopg

    name = f"t_wd_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (o bigint PRIMARY KEY, v text)")
    yield name
    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f"DROP TABLE {name}")


def test_a_loop_stuck_in_an_await_is_stalled_and_says_where(
    stack_env: dict[str, str], table: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        handler = HangingHandler(table)
        async with _loop(stack_env, handler, [b"v0", b"v1"]) as (loop, _):
            async with asyncio.timeout(60):
                while loop.batches == 0:
                    await loop.poll_once()
            handler.hang = True
            stalled = await _stalls(loop.run)
            assert "no poll finished" in str(stalled)

    with caplog.at_level(logging.CRITICAL, logger="shared.stream.loop"):
        asyncio.run(scenario())
    # The log names the await the loop was stuck in.
    assert any("forever" in r.getMessage() for r in caplog.records), caplog.text


def test_a_consumer_that_fetches_nothing_while_records_wait_is_stalled(
    stack_env: dict[str, str], table: str
) -> None:
    async def scenario() -> None:
        async with _loop(stack_env, TableHandler(table), [b"v0", b"v1", b"v2"]) as (loop, c):

            async def blind(*args: Any, **kwargs: Any) -> dict[Any, Any]:
                # A fetcher that lost its way: polls return nothing, the records stay.
                await asyncio.sleep(0.2)
                return {}

            c.getmany = blind
            stalled = await _stalls(loop.run)
            assert "nothing fetched while records wait" in str(stalled)

    asyncio.run(scenario())


def test_an_idle_consumer_with_nothing_waiting_runs_on(
    stack_env: dict[str, str], table: str
) -> None:
    async def scenario() -> None:
        async with _loop(stack_env, TableHandler(table), [b"v0", b"v1"]) as (loop, _):
            task = asyncio.create_task(loop.run())
            # Everything read, then several stall limits of quiet: still running.
            await asyncio.sleep(STALL_S * 4)
            assert not task.done(), task
            assert loop.batches >= 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(scenario())
