"""Erasure picks up a domain's tables from its manifest: a domain registered in-process has its
table's rows naming the device deleted, and nothing else of it touched."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from psycopg import sql

from shared import domains, erasure
from shared.domains import DomainManifest
from tests.data_rows import connect
from tests.domain_support import extra_domain, register
from townpulse.stack import Stack


@pytest.fixture
def lamps(monkeypatch: pytest.MonkeyPatch) -> DomainManifest:
    """A fourth domain, registered for the test."""
    manifest = extra_domain()
    register(monkeypatch, manifest)
    return manifest


@pytest.mark.unit
def test_the_device_tables_are_the_platforms_and_every_domains() -> None:
    tables = erasure.device_tables()
    expected = {
        (t.name, t.device_column)
        for m in domains.registered()
        for t in m.tables
        if t.device_column is not None
    }
    assert expected <= set(tables)
    assert set(erasure.PLATFORM_DEVICE_TABLES) <= set(tables)
    assert len(tables) == len(set(tables)) == len(expected) + len(erasure.PLATFORM_DEVICE_TABLES)
    # A table of the town's, naming no device (waste's daily plans), is not erased.
    assert "waste_plans" not in {t for t, _ in tables}


@pytest.mark.unit
def test_a_registered_domain_adds_its_device_tables(lamps: DomainManifest) -> None:
    tables = dict(erasure.device_tables())
    with_device, without = lamps.tables
    assert tables[with_device.name] == "device_id"
    assert without.name not in tables


@pytest.mark.integration
async def test_erasing_a_device_clears_a_registered_domains_table(
    stack: Stack,
    lamps: DomainManifest,
) -> None:
    table = sql.Identifier(lamps.tables[0].name)
    erased, other = f"lamp-{uuid.uuid4().hex[:8]}", f"lamp-{uuid.uuid4().hex[:8]}"
    async with await connect(stack.database_url()) as conn:
        await conn.execute(
            sql.SQL("CREATE TABLE {} (device_id text NOT NULL, ts timestamptz NOT NULL)").format(
                table
            )
        )
        try:
            now = datetime.now(UTC)
            for device, n in ((erased, 3), (other, 2)):
                for _ in range(n):
                    await conn.execute(
                        sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table), (device, now)
                    )
            async with conn.transaction():
                result = await erasure.erase_device(
                    conn,
                    device_id=erased,
                    topic=f"sensors/lamps/{erased}",
                    erase_aggregates=True,
                )
            assert result["rows"][lamps.tables[0].name] == 3
            cur = await conn.execute(
                sql.SQL("SELECT device_id, count(*) AS n FROM {} GROUP BY device_id").format(table)
            )
            assert {r["device_id"]: r["n"] for r in await cur.fetchall()} == {other: 2}
        finally:
            await conn.execute(sql.SQL("DROP TABLE {}").format(table))
            await conn.execute("DELETE FROM device_erasures WHERE device_id = %s", (erased,))
