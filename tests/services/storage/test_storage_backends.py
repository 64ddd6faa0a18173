"""The storage writer on both backends: TimescaleDB (the stack's database, when installed) and a
database kept on plain PostgreSQL. Same rows and the same hourly/daily answers on both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from services.storage.adapters.writer import Writer
from shared import retention
from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from shared.townzone import DEFAULT_ZONE
from tests.data_rows import plain_database
from townpulse.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(params=["stack", pytest.param("plain", marks=pytest.mark.plain_postgres)])
async def db(request: pytest.FixtureRequest, stack: Stack) -> AsyncIterator[AsyncConnection[Any]]:
    if request.param == "stack":
        url = stack.database_url()
        async with await AsyncConnection.connect(url, row_factory=dict_row) as conn:
            yield conn
    else:
        async with (
            plain_database(stack) as url,
            await AsyncConnection.connect(url, row_factory=dict_row) as conn,
        ):
            yield conn


async def test_readings_and_rollups_are_the_same_on_both_backends(
    db: AsyncConnection[Any],
) -> None:
    backend = await retention.backend(db)
    await db.commit()
    device = f"wb-{uuid.uuid4().hex[:10]}"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    values = [(hour + timedelta(minutes=20 * i), float(i)) for i in range(6)]  # two hours
    batch = ReadingBatch(
        device_id=device,
        domain=Domain.WASTE,
        received_at=datetime.now(UTC),
        readings=[Reading(ts=ts, metric="fill_pct", value=v, unit="%") for ts, v in values],
    )
    writer = Writer(maintain_rollups=backend == "postgres", timezone=DEFAULT_ZONE)
    for _ in range(2):  # a redelivered batch is stored once
        async with db.transaction():
            await writer.write(db, batches=[batch], deadletters=[])

    cur = await db.execute("SELECT count(*) AS n FROM readings WHERE device_id = %s", (device,))
    assert (await cur.fetchone())["n"] == 6  # type: ignore[index]
    # On TimescaleDB nothing is materialised yet: real-time aggregation answers from readings.
    cur = await db.execute(
        "SELECT bucket, n, total, min, max FROM readings_hourly WHERE device_id = %s"
        " ORDER BY bucket",
        (device,),
    )
    hourly = [(r["bucket"], r["n"], r["total"], r["min"], r["max"]) for r in await cur.fetchall()]
    assert hourly == [
        (hour, 3, 0.0 + 1 + 2, 0.0, 2.0),
        (hour + timedelta(hours=1), 3, 3.0 + 4 + 5, 3.0, 5.0),
    ]
    cur = await db.execute(
        "SELECT sum(n) AS n, sum(total) AS total FROM readings_daily WHERE device_id = %s",
        (device,),
    )
    daily = await cur.fetchone()
    assert daily is not None and (daily["n"], daily["total"]) == (6, 15.0)


async def test_timescaledb_compresses_readings_and_still_answers(stack: Stack) -> None:
    async with await AsyncConnection.connect(
        stack.database_url(), row_factory=dict_row, autocommit=True
    ) as conn:
        if await retention.backend(conn) != "timescaledb":
            pytest.skip("the stack runs on plain PostgreSQL")
        device = f"cz-{uuid.uuid4().hex[:10]}"
        # Old enough for a chunk of its own, far from the chunks being written.
        at = datetime.now(UTC) - timedelta(days=400)
        batch = ReadingBatch(
            device_id=device,
            domain=Domain.WASTE,
            received_at=at,
            readings=[
                Reading(ts=at + timedelta(minutes=i), metric="fill_pct", value=float(i))
                for i in range(50)
            ],
        )
        async with conn.transaction():
            await Writer(maintain_rollups=False, timezone=DEFAULT_ZONE).write(
                conn, batches=[batch], deadletters=[]
            )
        cur = await conn.execute(
            "SELECT compress_chunk(c, if_not_compressed => true) AS c FROM show_chunks("
            "'readings', older_than => %s, newer_than => %s) c",
            (at + timedelta(days=8), at - timedelta(days=8)),
        )
        assert await cur.fetchall()
        cur = await conn.execute(
            "SELECT count(*) AS n, sum(value) AS s FROM readings WHERE device_id = %s", (device,)
        )
        row = await cur.fetchone()
        assert row is not None and (row["n"], row["s"]) == (50, float(sum(range(50))))
        cur = await conn.execute(
            "SELECT bool_and(is_compressed) AS all_compressed"
            " FROM timescaledb_information.chunks WHERE hypertable_name = 'readings'"
            " AND range_start <= %s AND range_end > %s",
            (at, at),
        )
        assert (await cur.fetchone())["all_compressed"]  # type: ignore[index]
        # Writing into a compressed chunk (a late redelivery) still stores each reading once.
        async with conn.transaction():
            await Writer(maintain_rollups=False, timezone=DEFAULT_ZONE).write(
                conn, batches=[batch], deadletters=[]
            )
        cur = await conn.execute(
            "SELECT count(*) AS n FROM readings WHERE device_id = %s", (device,)
        )
        assert (await cur.fetchone())["n"] == 50  # type: ignore[index]
        await conn.execute("DELETE FROM readings WHERE device_id = %s", (device,))
