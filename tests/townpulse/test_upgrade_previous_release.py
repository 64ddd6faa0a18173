"""An installation of the previous release, with data, upgrades to this one.

The previous release is the commit before the newest migration (0008_sensors) was added, taken
with `git archive`; its own code migrates a scratch database and writes a town's rows (devices,
an admin key, a row of every per-device table, by its own tests/data_rows.py); then this
release's migrations run on it, and every row and the admin key are still there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shared.db import alembic_config, migrate
from tests.migration_support import empty_database, tree_before
from townpulse.bootstrap import ensure_admin_key
from townpulse.stack import Stack


def _heads(url: str) -> set[str]:
    from alembic.script import ScriptDirectory

    # The platform's migrations and the domains' own branches.
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


pytestmark = pytest.mark.integration

NEWEST_MIGRATION = "shared/migrations/versions/0008_sensors.py"
TABLES = (
    "readings",
    "waste_levels",
    "traffic_flows",
    "energy_scores",
    "energy_forecasts",
    "energy_episodes",
    "waste_collections",
    "alerts",
    "deadletters",
    "webhook_outbox",
    "device_erasures",
)

# Run by the previous release's Python, in its own tree: migrate, then write its rows.
LOAD = """
import asyncio, json, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from psycopg import AsyncConnection
from shared.db import migrate
from townpulse.bootstrap import ensure_admin_key
from tests import data_rows

url, key_file, tables = sys.argv[1], Path(sys.argv[2]), sys.argv[3].split(",")

async def load():
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        for i in range(3):
            await conn.execute(
                "INSERT INTO devices (id, domain, metadata) VALUES (%s, 'waste', %s)",
                (f"old-{i}", json.dumps({"bin_depth_mm": 1000 + i})),
            )
            for table in tables:
                at = datetime.now(UTC) - timedelta(hours=i + 1)
                await data_rows.add_row(conn, table, f"old-{i}", at)
        counts = {}
        for table in tables:
            n = [await data_rows.count_rows(conn, table, f"old-{i}") for i in range(3)]
            counts[table] = sum(n)
        return counts

migrate(url)
ensure_admin_key(url, key_file)
print(json.dumps(asyncio.run(load())))
"""


@pytest.fixture
def scratch(stack: Stack) -> Iterator[str]:
    with empty_database(stack, "tp_upgrade") as url:
        yield url


def test_previous_release_with_data_upgrades(scratch: str, tmp_path: Path) -> None:
    previous = tree_before(tmp_path, path=NEWEST_MIGRATION, change="A")
    assert not (previous / NEWEST_MIGRATION).exists()
    key_file = tmp_path / "admin-api-key"
    env = {**os.environ, "PYTHONPATH": str(previous)}
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD, scratch, str(key_file), ",".join(TABLES)],
        cwd=previous,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    before = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert all(n >= 3 for n in before.values()), before
    with psycopg.connect(scratch) as conn:
        revisions_before = {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
    assert "0008" not in revisions_before

    migrate(scratch)

    with psycopg.connect(scratch) as conn:
        revisions = {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
        after = {}
        for table in TABLES:
            query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                sql.Identifier(table),
                # webhook_outbox names the device in its message id (tests/data_rows.py).
                sql.SQL(
                    "msg_id = ANY(%(ids)s)"
                    if table == "webhook_outbox"
                    else "device_id = ANY(%(ids)s)"
                ),
            )
            row = conn.execute(query, {"ids": [f"old-{i}" for i in range(3)]})
            got = row.fetchone()
            assert got is not None
            after[table] = int(got[0])
        devices = conn.execute(
            "SELECT id, metadata, dev_eui, profile FROM devices WHERE id LIKE 'old-%' ORDER BY id"
        ).fetchall()
    # At this release's newest migration (the upgrade had to apply it and any since).
    assert max(_heads(scratch)) in revisions
    assert after == before
    assert devices == [(f"old-{i}", {"bin_depth_mm": 1000 + i}, None, None) for i in range(3)]
    # The previous release's admin key still opens this one (False: valid, nothing created).
    assert ensure_admin_key(scratch, key_file) is False
