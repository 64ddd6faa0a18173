"""Rows of every per-reading and per-event table, written straight to the database at a chosen
time: backdated rows for the retention tests, a device's whole footprint for the erasure tests.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from shared import retention
from shared.db import migrate
from townpulse.stack import Stack


async def _backend(conn: AsyncConnection[Any]) -> str:
    return await retention.backend(conn)


async def refresh_aggregates(conn: AsyncConnection[Any], start: datetime, end: datetime) -> None:
    """Materialise the continuous aggregates over [start, end) (TimescaleDB; autocommit conn)."""
    if await _backend(conn) != "timescaledb":
        return
    for view in ("readings_hourly", "readings_daily"):
        await conn.execute(
            sql.SQL("CALL refresh_continuous_aggregate({}, %s, %s)").format(sql.Literal(view)),
            (start - timedelta(days=2), end + timedelta(days=2)),
        )


async def add_reading(conn: AsyncConnection[Any], device_id: str, at: datetime) -> None:
    """One raw reading, with its hourly/daily rollups on plain PostgreSQL (as storage writes)."""
    if await _backend(conn) == "postgres":
        await conn.execute("SELECT townpulse_ensure_partition(%s)", (at,))
        for table, bucket in (
            ("readings_hourly", "date_trunc('hour', %(at)s::timestamptz)"),
            (
                "readings_daily",
                "date_trunc('day', %(at)s::timestamptz,"
                " (SELECT value FROM storage_info WHERE key = 'timezone'))",
            ),
        ):
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (device_id, metric, bucket, n, total, min, max)"
                    " VALUES (%(d)s, 'fill_pct', {}, 1, 42, 42, 42) ON CONFLICT DO NOTHING"
                ).format(sql.Identifier(table), sql.SQL(bucket)),
                {"d": device_id, "at": at},
            )
    await conn.execute(
        "INSERT INTO readings (device_id, metric, ts, value, unit, received_at)"
        " VALUES (%s, 'fill_pct', %s, 42, '%%', %s) ON CONFLICT DO NOTHING",
        (device_id, at, at),
    )


async def _subscription(conn: AsyncConnection[Any]) -> str:
    # Disabled: the alerts dispatcher must not try to deliver these test messages.
    sub_id = f"test-{uuid.uuid4().hex[:10]}"
    await conn.execute(
        "INSERT INTO webhook_subscriptions (id, url, secret, event_types, enabled)"
        " VALUES (%s, 'https://example.invalid/hook', 'whsec-test', ARRAY['alert.opened'], false)",
        (sub_id,),
    )
    return sub_id


async def add_row(conn: AsyncConnection[Any], table: str, device_id: str, at: datetime) -> None:
    """One row of `table` about `device_id`, dated `at` by the column retention looks at."""
    p = {"d": device_id, "at": at, "id": f"{device_id}-{uuid.uuid4().hex[:6]}"}
    inserts = {
        "energy_scores": "INSERT INTO energy_scores (device_id, ts, observed, expected, lower,"
        " upper, score, is_anomaly) VALUES (%(d)s, %(at)s, 1, 1, 0, 2, 0.1, false)",
        "waste_levels": "INSERT INTO waste_levels (device_id, ts, raw, level)"
        " VALUES (%(d)s, %(at)s, 40, 40)",
        "traffic_flows": "INSERT INTO traffic_flows (device_id, ts, vehicles, expected, lower,"
        " upper, score, is_anomaly) VALUES (%(d)s, %(at)s, 10, 10, 5, 15, 0.1, false)",
        "energy_forecasts": "INSERT INTO energy_forecasts (device_id, target_ts, issued_at,"
        " expected, lower, upper) VALUES (%(d)s, %(at)s, %(at)s, 1, 0, 2)",
        "traffic_forecasts": "INSERT INTO traffic_forecasts (device_id, target_ts, issued_at,"
        " expected, lower, upper) VALUES (%(d)s, %(at)s, %(at)s, 1, 0, 2)",
        "energy_episodes": "INSERT INTO energy_episodes (device_id, kind, started_at, severity,"
        " peak_score) VALUES (%(d)s, 'spike', %(at)s, 'warning', 0.9)",
        "waste_episodes": "INSERT INTO waste_episodes (device_id, kind, started_at, severity,"
        " peak, readings) VALUES (%(d)s, 'overflow', %(at)s, 'warning', 100, 3)",
        "traffic_episodes": "INSERT INTO traffic_episodes (device_id, kind, started_at,"
        " severity, peak, readings) VALUES (%(d)s, 'jam', %(at)s, 'warning', 0.9, 3)",
        "waste_collections": "INSERT INTO waste_collections (device_id, ts, level_before,"
        " level_after) VALUES (%(d)s, %(at)s, 90, 5)",
        "lighting_readings": "INSERT INTO lighting_readings (device_id, ts, is_on, power_w)"
        " VALUES (%(d)s, %(at)s, true, 900)",
        "lighting_episodes": "INSERT INTO lighting_episodes (device_id, kind, started_at,"
        " severity, peak, readings) VALUES (%(d)s, 'lighting.daylight', %(at)s, 'warning', 0, 2)",
        "alerts": "INSERT INTO alerts (id, device_id, domain, kind, state, severity, count,"
        " first_seen, last_seen, last_observed_at, active, min_duration_s, cooldown_s,"
        " resolved_at) VALUES (%(id)s, %(d)s, 'waste', 'overflow', 'resolved', 'warning', 1,"
        " %(at)s, %(at)s, %(at)s, false, 0, 60, %(at)s)",
        "deadletters": "INSERT INTO deadletters (kafka_topic, kafka_partition, kafka_offset,"
        " received_at, topic, device_id, reason, payload) VALUES ('test', 0,"
        " (random() * 1e15)::bigint, %(at)s, 'sensors/waste/' || %(d)s, %(d)s, 'invalid',"
        ' \'{"fill_pct": "x"}\')',
        "runtime_outbox": "INSERT INTO runtime_outbox (topic, key, value, created_at)"
        " VALUES ('test', convert_to(%(d)s, 'UTF8'), '\\x00', %(at)s)",
        "device_erasures": "INSERT INTO device_erasures (device_id, erased_at)"
        " VALUES (%(d)s, %(at)s)",
        "alert_processed_events": "INSERT INTO alert_processed_events (event_id, processed_at)"
        " VALUES (%(d)s || ':overflow:' || %(at)s::text || ':opened', %(at)s)",
        "platform_footprint": "INSERT INTO platform_footprint (ts, component, source, cpu_s,"
        " rss_bytes, processes, started_at) VALUES (%(at)s, %(d)s, 'proc', 1, 1000, 1, %(at)s)",
    }
    if table == "readings":
        await add_reading(conn, device_id, at)
    elif table in ("readings_hourly", "readings_daily"):
        await add_reading(conn, device_id, at)
        await refresh_aggregates(conn, at, at)
    elif table == "webhook_outbox":
        sub = await _subscription(conn)
        cur = await conn.execute(
            "INSERT INTO webhook_outbox (subscription_id, msg_id, alert_id, event_type, body,"
            " created_at) VALUES (%s, %s, %s, 'alert.opened', %s, %s) RETURNING id",
            (sub, device_id, f"alert-of-{device_id}", f'{{"device_id": "{device_id}"}}', at),
        )
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(
            "INSERT INTO webhook_attempts (outbox_id, attempt, started_at, latency_ms, outcome)"
            " VALUES (%s, 1, %s, 10, 'failed')",
            (row[0] if not isinstance(row, dict) else row["id"], at),
        )
    elif table in ("runtime_state", "waste_bins", "lighting_circuits", "alert_device_activity"):
        # Their age is the device's deletion.
        await conn.execute(
            "INSERT INTO devices (id, domain, deleted_at) VALUES (%(d)s, 'waste', %(at)s)"
            " ON CONFLICT (id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at",
            p,
        )
        await conn.execute(
            {
                "runtime_state": "INSERT INTO runtime_state (group_id, device_id, model_version,"
                " state) VALUES ('test', %(d)s, 'v1', '\\x00')",
                "waste_bins": "INSERT INTO waste_bins (device_id, ts, level, rate_pct_h)"
                " VALUES (%(d)s, %(at)s, 40, 1)",
                "lighting_circuits": "INSERT INTO lighting_circuits (device_id, ts, is_on)"
                " VALUES (%(d)s, %(at)s, false)",
                "alert_device_activity": "INSERT INTO alert_device_activity (device_id, domain,"
                " last_at) VALUES (%(d)s, 'waste', %(at)s)",
            }[table],
            p,
        )
    else:
        await conn.execute(inserts[table], p)


# How to find a device's rows in the tables without a device_id column.
_BY_DEVICE = {
    "webhook_outbox": "msg_id = %(d)s OR alert_id = 'alert-of-' || %(d)s",
    "runtime_outbox": "key = convert_to(%(d)s, 'UTF8')",
    "alert_processed_events": "left(event_id, length(%(d)s) + 1) = %(d)s || ':'",
    "platform_footprint": "component = %(d)s",
}


async def count_rows(conn: AsyncConnection[Any], table: str, device_id: str) -> int:
    where = _BY_DEVICE.get(table, "device_id = %(d)s")
    cur = await conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {}").format(sql.Identifier(table), sql.SQL(where)),
        {"d": device_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0] if not isinstance(row, dict) else row["count"])


@asynccontextmanager
async def plain_database(stack: Stack) -> AsyncIterator[str]:
    """A fresh database kept on plain PostgreSQL (even when the server has TimescaleDB),
    migrated; its URL. Dropped afterwards."""
    async with scratch_database(stack, plain=True) as url:
        yield url


@asynccontextmanager
async def scratch_database(
    stack: Stack, *, plain: bool, timezone: str | None = None
) -> AsyncIterator[str]:
    """A fresh database of the stack's server, migrated (`timezone`: the town's, else the
    environment's); on plain PostgreSQL if `plain`, else on the server's backend. Its URL;
    dropped afterwards."""
    name = f"tp_{'plain' if plain else 'db'}_{uuid.uuid4().hex[:10]}"
    ident = sql.Identifier(name)
    async with await AsyncConnection.connect(stack.superuser_url(), autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {} OWNER townpulse").format(ident))
        if plain:
            await admin.execute(
                sql.SQL("ALTER DATABASE {} SET townpulse.storage_backend = 'postgres'").format(
                    ident
                )
            )
        url = stack.database_url().rsplit("/", 1)[0] + "/" + name
        try:
            migrate(url, timezone=timezone)
            yield url
        finally:
            await admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident))


async def connect(url: str) -> AsyncConnection[Any]:
    return await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)
