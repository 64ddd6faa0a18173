"""Every migration upgrades a populated database, and those that downgrade do so with data in it.

A scratch database on the stack's PostgreSQL (TimescaleDB, as a town's): migrations are applied
one revision at a time in the chain's order, and after each the rows a town would have at that
revision are inserted; at the head every row is still there, with the data migrations' results
(offsets moved into `stream_offsets`). Then the linear tail is downgraded step by step, then
everything to the base, and the chain is applied again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql

from shared.db import alembic_config
from tests.migration_support import empty_database
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

# What a town has at each revision: plain SQL, as the release of that revision wrote it.
ROWS: dict[str, list[str]] = {
    "0001": [
        "INSERT INTO devices (id, domain, name, lat, lon, metadata) VALUES"
        " ('m-1', 'energy', 'Town hall', 45.1, 5.7, '{}'),"
        " ('b-1', 'waste', 'Market bin', 45.2, 5.8, '{\"bin_depth_mm\": 1200}')",
        "INSERT INTO api_keys (id, name, role, key_hash)"
        " VALUES ('k-1', 'ops', 'operator', '\\x01')",
        "INSERT INTO deadletters (kafka_topic, kafka_partition, kafka_offset, received_at, topic,"
        " device_id, reason) VALUES ('readings.waste', 0, 7, now(), 'sensors/waste/b-1', 'b-1',"
        " 'invalid')",
        "INSERT INTO readings (device_id, metric, ts, value, unit, received_at)"
        " SELECT 'm-1', 'energy_kwh', t, 1.5, 'kWh', t"
        " FROM generate_series(now() - interval '2 days', now(), interval '15 minutes') t",
    ],
    "0002": [
        "INSERT INTO alert_rules (id, domain, metric, op, threshold, severity, kind)"
        " VALUES ('r-1', 'waste', 'fill_pct', '>=', 90, 'warning', 'full')",
        "INSERT INTO alerts (id, device_id, domain, kind, state, severity, count, first_seen,"
        " last_seen, last_observed_at, active, min_duration_s, cooldown_s)"
        " VALUES ('a-1', 'b-1', 'waste', 'full', 'open', 'warning', 1, now(), now(), now(),"
        " true, 0, 60)",
        "INSERT INTO webhook_subscriptions (id, url, secret, event_types)"
        " VALUES ('w-1', 'https://town.example/hook', 'whsec-1', ARRAY['opened'])",
        "INSERT INTO alert_consumer_offsets VALUES ('alerts', 'readings.waste', 0, 42)",
    ],
    "0003": [
        "INSERT INTO runtime_offsets VALUES ('energy', 'readings.energy', 0, 96)",
        "INSERT INTO runtime_state (group_id, device_id, model_version, state, clock)"
        " VALUES ('energy', 'm-1', 'v1', '\\x80', now())",
        "INSERT INTO energy_scores (device_id, ts, observed, expected, lower, upper, score,"
        " is_anomaly) VALUES ('m-1', now(), 1.5, 1.4, 1.0, 2.0, 0.1, false)",
    ],
    "0004": [
        "INSERT INTO waste_levels (device_id, ts, raw, level) VALUES ('b-1', now(), 40, 40)",
    ],
    "0005b_access": [
        "INSERT INTO api_keys (id, name, role, key_hash)"
        " VALUES ('k-2', 'screen', 'viewer', '\\x02')",
        "INSERT INTO audit_log (key_id, role, action, target, outcome)"
        " VALUES ('k-1', 'operator', 'device.create', 'b-1', 'ok')",
    ],
    "0005a_erasures": [
        "INSERT INTO device_erasures (device_id, erased_at) VALUES ('gone-1', now())",
    ],
    "0007": [
        "UPDATE runtime_state SET learnt_since = now() - interval '2 days' WHERE device_id = 'm-1'",
    ],
    "0008": [
        "INSERT INTO devices (id, domain, dev_eui, profile) VALUES"
        " ('eui-0011223344556677', 'waste', '0011223344556677', NULL)",
    ],
    "0010": [
        "INSERT INTO platform_footprint (ts, component, source, cpu_s, rss_bytes, processes,"
        " started_at) VALUES (now(), 'postgres', 'proc', 12.5, 1048576, 9, now())",
    ],
    "0011": [
        "INSERT INTO reports (id, period_start, period_end, lang, kind, factors_version, figures,"
        " pdf, size_bytes, sha256) VALUES ('rp_2026-11-01_2026-12-01_fr', '2026-11-01',"
        " '2026-12-01', 'fr', 'monthly', '2026.1', '{}', '\\x25504446', 4, 'ab')",
        "INSERT INTO waste_plans (day, bins, every_bins, vehicles, km, every_bin_km,"
        " fixed_visits_per_week, rounds_per_week)"
        " VALUES ('2026-11-02', 40, 150, 2, 31.5, 48.2, 1.3, 3)",
    ],
    "0012": [
        "INSERT INTO register_algorithms (id, service, declaration)"
        " VALUES ('energy.forecast', 'energy', '{\"id\": \"energy.forecast\"}')",
        "INSERT INTO register_quality (algorithm, evaluated_at, dataset, command, figures,"
        " recorded_by) VALUES ('energy.forecast', now(), 'm.csv', 'townpulse evaluate m.csv',"
        " '{\"forecast_error_ratio\": 0.8}', 'k-1')",
        "INSERT INTO register_texts (key, value, updated_by) VALUES ('town_name', 'Town', 'k-1')",
    ],
    # As the migrate step does for a registered domain (shared.db.sync_domains), then a device
    # of it.
    "0017": [
        "INSERT INTO domains (name) VALUES ('lighting') ON CONFLICT DO NOTHING",
        "INSERT INTO devices (id, domain, name) VALUES ('c-1', 'lighting', 'Cabinet')",
    ],
}

# Rows expected at the head: every table above, with what the data migrations made of them.
EXPECTED = {
    "reports": 1,
    "waste_plans": 1,
    "devices": 4,
    # energy and waste (0017 took them from the devices), lighting.
    "domains": 3,
    "api_keys": 2,
    "deadletters": 1,
    "readings": 193,
    "alert_rules": 1,
    "alerts": 1,
    "webhook_subscriptions": 1,
    "runtime_state": 1,
    "energy_scores": 1,
    "waste_levels": 1,
    "audit_log": 1,
    "device_erasures": 1,
    # 0005c moved both consumers' offsets here.
    "stream_offsets": 2,
    "platform_footprint": 1,
    "register_algorithms": 1,
    "register_quality": 1,
    "register_texts": 1,
}


def _config(url: str) -> Config:
    # The platform's migrations and the domains' own branches, as `townpulse up` applies them.
    return alembic_config(url)


def _order(cfg: Config) -> list[str]:
    """Revisions from the base up, each after everything it depends on."""
    script = ScriptDirectory.from_config(cfg)
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        got = row.fetchone()
    assert got is not None
    return int(got[0])


def _execute(url: str, statements: list[str]) -> None:
    with psycopg.connect(url) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE'"
        ).fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def scratch(stack: Stack) -> Iterator[str]:
    with empty_database(stack, "tp_mig") as url:
        yield url


def _populated_head(url: str) -> Config:
    cfg = _config(url)
    order = _order(cfg)
    assert set(ROWS) <= set(order), "a revision named in ROWS is not in the chain"
    for revision in order:
        command.upgrade(cfg, revision)
        _execute(url, ROWS.get(revision, []))
    return cfg


def test_each_migration_upgrades_a_populated_database(scratch: str) -> None:
    _populated_head(scratch)
    counts = {table: _count(scratch, table) for table in EXPECTED}
    assert counts == EXPECTED
    rows: list[Any]
    with psycopg.connect(scratch) as conn:
        rows = conn.execute(
            "SELECT group_id, next_offset, checkpoint_offset FROM stream_offsets ORDER BY 1"
        ).fetchall()
        state = conn.execute(
            "SELECT applied_offset, learnt_since IS NOT NULL FROM runtime_state"
        ).fetchone()
        device = conn.execute("SELECT metadata, dev_eui FROM devices WHERE id = 'b-1'").fetchone()
    # The runtime's offsets were checkpoints too; the alerts' were not.
    assert rows == [("alerts", 42, None), ("energy", 96, 96)]
    assert state == (None, True)
    assert device == ({"bin_depth_mm": 1200}, None)


def test_downgrades_keep_data_and_the_chain_applies_again(scratch: str) -> None:
    cfg = _populated_head(scratch)
    # 0017 gives the domain lists back as CHECK constraints: every row of devices still fits.
    # The platform's later revisions first, then 0017 alone (lighting's branch stays).
    command.downgrade(cfg, "0017")
    command.downgrade(cfg, "0017@-1")
    assert "domains" not in _tables(scratch)
    assert _count(scratch, "devices") == 4
    with psycopg.connect(scratch) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO devices (id, domain) VALUES ('p-1', 'parking')")
    command.upgrade(cfg, "heads")
    assert _count(scratch, "domains") == 3
    # The linear tail, one step at a time: what each step leaves must hold its data (the
    # lighting branch's downgrade takes its devices with it).
    command.downgrade(cfg, "0007")
    assert _count(scratch, "devices") == 3
    assert "codecs" not in _tables(scratch)
    command.downgrade(cfg, "0006")
    with psycopg.connect(scratch) as conn:
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'runtime_state'"
            )
        }
    assert "learnt_since" not in cols and "applied_offset" in cols
    # Below 0005c: the three 0005 branches (each depends on 0002 and 0004) go together.
    command.downgrade(cfg, "0004")
    # 0005c's downgrade moved the offsets back to the two tables it replaced.
    assert _count(scratch, "runtime_offsets") == 1
    assert _count(scratch, "alert_consumer_offsets") == 1
    assert "stream_offsets" not in _tables(scratch)
    # Everything down to the base, with data in every table, then up again.
    command.downgrade(cfg, "base")
    assert "devices" not in _tables(scratch)
    command.upgrade(cfg, "heads")
    assert _count(scratch, "devices") == 0
