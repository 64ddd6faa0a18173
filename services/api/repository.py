"""SQL for the operator API. Same queries on TimescaleDB and plain PostgreSQL (same tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from services.api.buckets import Bucket, Source

# date_bin needs an origin; Paris midnight keeps hour bins aligned on local hours too.
ORIGIN = "2000-01-01 00:00:00+01"

DEVICE_COLUMNS = "id, domain, name, lat, lon, metadata, created_at"


async def insert_device(
    conn: AsyncConnection[Any], *, device: dict[str, Any]
) -> dict[str, Any] | None:
    """Insert, or revive a deleted device with the same id; None if a live one exists."""
    cur = await conn.execute(
        f"""
        INSERT INTO devices (id, domain, name, lat, lon, metadata)
        VALUES (%(id)s, %(domain)s, %(name)s, %(lat)s, %(lon)s, %(metadata)s)
        ON CONFLICT (id) DO UPDATE SET
            domain = EXCLUDED.domain, name = EXCLUDED.name, lat = EXCLUDED.lat,
            lon = EXCLUDED.lon, metadata = EXCLUDED.metadata, created_at = now(),
            deleted_at = NULL
        WHERE devices.deleted_at IS NOT NULL
        RETURNING {DEVICE_COLUMNS}
        """,
        {**device, "metadata": Jsonb(device["metadata"])},
    )
    return await cur.fetchone()


async def get_device(conn: AsyncConnection[Any], device_id: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = %s AND deleted_at IS NULL", (device_id,)
    )
    return await cur.fetchone()


async def lock_device(conn: AsyncConnection[Any], device_id: str) -> dict[str, Any] | None:
    """The device, live or deleted, locked until the transaction ends (erasure)."""
    cur = await conn.execute(
        f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = %s FOR UPDATE", (device_id,)
    )
    return await cur.fetchone()


async def list_devices(
    conn: AsyncConnection[Any], *, domain: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    where = "deleted_at IS NULL" + (" AND domain = %(domain)s" if domain else "")
    params = {"domain": domain, "limit": limit, "offset": offset}
    cur = await conn.execute(
        f"SELECT {DEVICE_COLUMNS} FROM devices WHERE {where} ORDER BY id "
        "LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    rows = await cur.fetchall()
    cur = await conn.execute(f"SELECT count(*) AS n FROM devices WHERE {where}", params)
    total = (await cur.fetchone() or {"n": 0})["n"]
    return rows, int(total)


async def delete_device(conn: AsyncConnection[Any], device_id: str) -> bool:
    cur = await conn.execute(
        "UPDATE devices SET deleted_at = now() WHERE id = %s AND deleted_at IS NULL", (device_id,)
    )
    return cur.rowcount == 1


async def raw_readings(
    conn: AsyncConnection[Any],
    *,
    device_id: str,
    start: datetime,
    end: datetime,
    metric: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        """
        SELECT ts, metric, value, unit FROM readings
        WHERE device_id = %(d)s AND ts >= %(start)s AND ts < %(end)s
          AND (%(metric)s::text IS NULL OR metric = %(metric)s)
        ORDER BY ts, metric LIMIT %(limit)s
        """,
        {"d": device_id, "start": start, "end": end, "metric": metric, "limit": limit},
    )
    return await cur.fetchall()


_BUCKET_SQL = {
    Source.RAW: """
        SELECT date_bin(%(width)s, ts, %(origin)s::timestamptz) AS bucket, metric,
               avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS count
        FROM readings
        WHERE device_id = %(d)s AND ts >= %(start)s AND ts < %(end)s
          AND (%(metric)s::text IS NULL OR metric = %(metric)s)
        GROUP BY 1, 2 ORDER BY 1, 2 LIMIT %(limit)s
    """,
    Source.HOURLY: """
        SELECT date_bin(%(width)s, bucket, %(origin)s::timestamptz) AS bucket, metric,
               sum(total) / sum(n) AS avg, min(min) AS min, max(max) AS max, sum(n) AS count
        FROM readings_hourly
        WHERE device_id = %(d)s AND bucket >= date_trunc('hour', %(start)s::timestamptz)
          AND bucket < %(end)s AND (%(metric)s::text IS NULL OR metric = %(metric)s)
        GROUP BY 1, 2 ORDER BY 1, 2 LIMIT %(limit)s
    """,
    Source.DAILY: """
        SELECT bucket, metric, total / n AS avg, min, max, n AS count
        FROM readings_daily
        WHERE device_id = %(d)s
          AND bucket >= date_trunc('day', %(start)s::timestamptz, 'Europe/Paris')
          AND bucket < %(end)s AND (%(metric)s::text IS NULL OR metric = %(metric)s)
        ORDER BY 1, 2 LIMIT %(limit)s
    """,
}


async def bucketed_readings(
    conn: AsyncConnection[Any],
    *,
    device_id: str,
    start: datetime,
    end: datetime,
    metric: str | None,
    bucket: Bucket,
    limit: int,
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        _BUCKET_SQL[bucket.source],
        {
            "d": device_id,
            "start": start,
            "end": end,
            "metric": metric,
            "limit": limit,
            "width": bucket.width,
            "origin": ORIGIN,
        },
    )
    return await cur.fetchall()


async def deadletters(
    conn: AsyncConnection[Any], *, limit: int, reason: str | None, device_id: str | None
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        """
        SELECT id, received_at, topic, device_id, reason, detail, payload, payload_size
        FROM deadletters
        WHERE (%(reason)s::text IS NULL OR reason = %(reason)s)
          AND (%(device)s::text IS NULL OR device_id = %(device)s)
        ORDER BY received_at DESC, id DESC LIMIT %(limit)s
        """,
        {"reason": reason, "device": device_id, "limit": limit},
    )
    return await cur.fetchall()
