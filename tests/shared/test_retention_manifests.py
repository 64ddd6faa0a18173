"""Retention picks up a domain's tables from its manifest: each joins the class its manifest
names (a domain registered in-process is pruned with its class and reported in it)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from psycopg import sql

from shared import domains, retention
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


def _tables(classes: tuple[retention.DataClass, ...]) -> dict[str, str]:
    return {t.table: c.name for c in classes for t in c.targets}


@pytest.mark.unit
def test_every_domain_table_with_a_class_is_in_it() -> None:
    by_table = _tables(retention.classes())
    for manifest in domains.registered():
        for table in manifest.tables:
            if table.retention is None:
                assert table.name not in by_table
            else:
                assert by_table[table.name] == table.retention


@pytest.mark.unit
def test_the_classes_are_the_platforms_with_the_domains_tables_added() -> None:
    classes = retention.classes()
    assert [c.name for c in classes] == [c.name for c in retention.PLATFORM_CLASSES]
    without_domains = retention.classes(manifests=())
    assert _tables(without_domains) == {
        t.table: c.name for c in retention.PLATFORM_CLASSES for t in c.targets
    }
    domain_tables = sum(t.retention is not None for m in domains.registered() for t in m.tables)
    assert len(_tables(classes)) == len(_tables(without_domains)) + domain_tables


@pytest.mark.unit
def test_deleted_device_state_ages_rows_by_their_devices_deletion() -> None:
    target = next(t for c in retention.classes() for t in c.targets if t.table == "waste_bins")
    assert "deleted_at" in target.age_sql
    assert "waste_bins.device_id" in target.age_sql


@pytest.mark.unit
def test_a_registered_domain_adds_its_table_to_its_class(lamps: DomainManifest) -> None:
    by_table = _tables(retention.classes())
    assert by_table[lamps.tables[0].name] == "forecasts"
    assert lamps.tables[1].name not in by_table


@pytest.mark.unit
def test_an_unknown_class_or_a_missing_age_is_refused() -> None:
    with pytest.raises(domains.ManifestError, match="names no retention class"):
        retention.classes(manifests=[extra_domain(retention="for_ever")])
    no_age = dataclasses.replace(
        extra_domain(), tables=(domains.Table("lamps_x", retention="scores"),)
    )
    with pytest.raises(domains.ManifestError, match="has no age"):
        retention.classes(manifests=[no_age])


@pytest.mark.integration
async def test_a_registered_domains_table_is_pruned_and_reported_with_its_class(
    stack: Stack,
    lamps: DomainManifest,
) -> None:
    name = lamps.tables[0].name
    table = sql.Identifier(name)
    settings = retention.RetentionSettings()
    days = settings.days("forecasts")
    now = datetime.now(UTC)
    old, fresh = now - timedelta(days=days + 1), now - timedelta(days=days - 1)
    device = f"lamp-{uuid.uuid4().hex[:8]}"
    async with await connect(stack.database_url()) as conn:
        await conn.execute(
            sql.SQL("CREATE TABLE {} (device_id text NOT NULL, ts timestamptz NOT NULL)").format(
                table
            )
        )
        try:
            for at in (old, old, fresh):
                await conn.execute(
                    sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table), (device, at)
                )
            deleted = await retention.enforce(conn, settings, now=now)
            assert deleted[name] == 2
            cur = await conn.execute(sql.SQL("SELECT ts FROM {}").format(table))
            assert [r["ts"] for r in await cur.fetchall()] == [fresh]
            report = {c["name"]: c for c in await retention.report(conn, settings)}
            tables = {t["table"]: t for t in report["forecasts"]["tables"]}
            assert tables[name]["oldest"] == fresh
        finally:
            await conn.execute(sql.SQL("DROP TABLE {}").format(table))
