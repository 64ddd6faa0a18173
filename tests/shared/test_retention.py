"""Retention per data class, on the stack's database (TimescaleDB when installed) and on a
database kept on plain PostgreSQL: backdated rows of every class are pruned, fresh ones and the
aggregates of pruned readings are kept."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg import AsyncConnection

from shared import retention
from tests.data_rows import add_row as add_any_row
from tests.data_rows import connect, plain_database
from tests.data_rows import count_rows as count_any_rows
from townpulse.stack import Stack
from townpulse.stack.config import MAINTENANCE_ROLE

pytestmark = pytest.mark.integration

SETTINGS = retention.RetentionSettings()
CHUNK_DAYS = 71

# The sensors' tables (migration 0008), which name a device by id (device_uplinks) or by the
# key it was heard under (heard_devices: nobody registered it).
_SENSOR_ROWS = {
    "device_uplinks": "INSERT INTO device_uplinks (device_id, ts, source, f_port, f_cnt, rssi,"
    " snr, gateways, received_at) VALUES (%(d)s, %(at)s, 'chirpstack', 85, 1, -90, 7.5, 2,"
    " %(at)s)",
    "heard_devices": "INSERT INTO heard_devices (device_key, source, first_heard, last_heard)"
    " VALUES (%(d)s, 'chirpstack', %(at)s, %(at)s)",
}


async def add_row(conn: AsyncConnection[Any], table: str, device_id: str, at: datetime) -> None:
    if table in _SENSOR_ROWS:
        await conn.execute(_SENSOR_ROWS[table], {"d": device_id, "at": at})
    else:
        await add_any_row(conn, table, device_id, at)


async def count_rows(conn: AsyncConnection[Any], table: str, device_id: str) -> int:
    if table == "heard_devices":
        cur = await conn.execute(
            "SELECT count(*) AS n FROM heard_devices WHERE device_key = %s", (device_id,)
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row["n"])
    return await count_any_rows(conn, table, device_id)


@pytest.fixture(params=["stack", pytest.param("plain", marks=pytest.mark.plain_postgres)])
async def db(request: pytest.FixtureRequest, stack: Stack) -> AsyncIterator[AsyncConnection[Any]]:
    if request.param == "stack":
        async with await connect(stack.database_url()) as conn:
            yield conn
    else:
        async with plain_database(stack) as url, await connect(url) as conn:
            assert await retention.backend(conn) == "postgres"
            yield conn


async def _prune(conn: AsyncConnection[Any]) -> None:
    """What the storage service's schedule (as the maintenance role, like the service) and
    TimescaleDB's scheduler do, run now."""
    url = Stack().postgres.role_url(MAINTENANCE_ROLE).rsplit("/", 1)[0] + "/" + conn.info.dbname
    async with await connect(url) as maintenance:
        await retention.ensure_policies(maintenance, SETTINGS)
    if await retention.backend(conn) == "timescaledb":
        cur = await conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"
        )
        for row in await cur.fetchall():
            await conn.execute("CALL run_job(%s)", (row["job_id"],))
    async with await connect(url) as maintenance:
        await retention.enforce(maintenance, SETTINGS)


async def test_every_class_is_pruned_and_aggregates_are_kept(db: AsyncConnection[Any]) -> None:
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    placed: list[tuple[str, str, str]] = []  # (class, table, device) expected gone / kept
    for data_class in retention.classes():
        days = SETTINGS.days(data_class.name)
        for target in data_class.targets:
            old, fresh = f"old-{tag}-{target.table}", f"new-{tag}-{target.table}"
            if days:
                # Policies drop whole chunks only: go past the period by more than a chunk
                # (7 days for hypertables, 70 for the continuous aggregates' materialisation).
                await add_row(db, target.table, old, now - timedelta(days=days + CHUNK_DAYS))
                await add_row(db, target.table, fresh, now - timedelta(days=days / 2))
                placed += [("gone", target.table, old), ("kept", target.table, fresh)]
            else:
                await add_row(db, target.table, old, now - timedelta(days=4000))
                placed.append(("kept", target.table, old))
    # Readings older than their period, whose hourly and daily rollups must outlive them.
    raw_old = f"raw-{tag}"
    await add_row(db, "readings_hourly", raw_old, now - timedelta(days=SETTINGS.readings_days + 30))
    assert await count_rows(db, "readings", raw_old) == 1
    assert await count_rows(db, "readings_hourly", raw_old) == 1

    missing = [(t, d) for _, t, d in placed if await count_rows(db, t, d) != 1]
    assert not missing, f"rows not written: {missing}"

    await _prune(db)

    wrong = [
        (fate, table, device, n)
        for fate, table, device in placed
        if (n := await count_rows(db, table, device)) != (0 if fate == "gone" else 1)
    ]
    assert not wrong, f"rows not pruned / wrongly pruned: {wrong}"
    assert await count_rows(db, "readings", raw_old) == 0
    assert await count_rows(db, "readings_hourly", raw_old) == 1
    assert await count_rows(db, "readings_daily", raw_old) == 1
    # A webhook message's attempts go with it.
    cur = await db.execute(
        "SELECT count(*) AS n FROM webhook_attempts a JOIN webhook_outbox o ON o.id = a.outbox_id"
        " WHERE o.msg_id = %s",
        (f"new-{tag}-webhook_outbox",),
    )
    assert (await cur.fetchone())["n"] == 1  # type: ignore[index]


async def test_open_alerts_and_live_devices_state_are_never_pruned(
    db: AsyncConnection[Any],
) -> None:
    old = datetime.now(UTC) - timedelta(days=5000)
    device = f"live-{uuid.uuid4().hex[:8]}"
    await db.execute("INSERT INTO devices (id, domain) VALUES (%s, 'waste')", (device,))
    await db.execute(
        "INSERT INTO runtime_state (group_id, device_id, model_version, state)"
        " VALUES ('test', %s, 'v1', '\\x00')",
        (device,),
    )
    await db.execute(
        "INSERT INTO alerts (id, device_id, domain, kind, state, severity, count, first_seen,"
        " last_seen, last_observed_at, active, min_duration_s, cooldown_s)"
        " VALUES (%s, %s, 'waste', 'overflow', 'open', 'warning', 1, %s, %s, %s, true, 0, 60)",
        (f"a-{device}", device, old, old, old),
    )
    await _prune(db)
    assert await count_rows(db, "runtime_state", device) == 1
    assert await count_rows(db, "alerts", device) == 1


async def test_policies_follow_the_settings(stack: Stack) -> None:
    async with await connect(stack.database_url()) as conn:
        if await retention.backend(conn) != "timescaledb":
            pytest.skip("TimescaleDB policies: the stack runs on plain PostgreSQL")
        shorter = retention.RetentionSettings(scores_days=90)
        try:
            await retention.ensure_policies(conn, shorter)
            assert await retention._policy_days(conn, "energy_scores") == 90
            await retention.ensure_policies(conn, retention.RetentionSettings(scores_days=0))
            assert await retention._policy_days(conn, "energy_scores") is None
        finally:
            await retention.ensure_policies(conn, SETTINGS)
        assert await retention._policy_days(conn, "energy_scores") == SETTINGS.scores_days
        assert await retention._policy_days(conn, "readings_hourly") == (
            SETTINGS.aggregates_hourly_days
        )


def test_admin_sees_every_class_with_its_period_and_oldest_row(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    r = api.get("/v1/admin/retention")
    assert r.status_code == 200, r.text
    classes = {c["name"]: c for c in r.json()}
    assert set(classes) == {c.name for c in retention.classes()}
    assert classes["readings"]["days"] == SETTINGS.readings_days
    assert classes["aggregates_daily"]["days"] is None
    assert classes["aggregates_daily"]["enforced_by"] == "kept"
    now = datetime.now(UTC)
    for c in classes.values():
        assert c["tables"], c
        if c["days"] and c["oldest"]:
            # Policies drop whole chunks: a row may outlive its period by up to one chunk.
            policy = c["enforced_by"].startswith("timescaledb")
            slack = timedelta(days=CHUNK_DAYS if policy else 0)
            cutoff = now - timedelta(days=c["days"]) - slack - timedelta(days=1)
            assert datetime.fromisoformat(c["oldest"]) > cutoff, c


def test_retention_is_for_admins_only(api: httpx.Client, stack_env: dict[str, str]) -> None:
    r = api.post("/v1/api-keys", json={"name": f"op-{uuid.uuid4().hex[:6]}", "role": "operator"})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    try:
        got = httpx.get(
            f"{stack_env['API_URL']}/v1/admin/retention",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert got.status_code == 403
        assert httpx.get(f"{stack_env['API_URL']}/v1/admin/retention").status_code == 401
    finally:
        api.delete(f"/v1/api-keys/{r.json()['id']}")


@pytest.mark.unit
def test_every_class_has_a_setting() -> None:
    for data_class in retention.classes():
        assert SETTINGS.days(data_class.name) >= 0
    with pytest.raises(ValueError):
        retention.RetentionSettings(readings_days=-1)
