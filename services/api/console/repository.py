"""The few queries only the console needs: freshness per domain, devices with their last reading."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

# Only recent readings are looked at: the newest reading of a live device is minutes old, and
# bounding ts lets PostgreSQL skip the older partitions instead of reading each one's index.
_LAST = """
    LEFT JOIN LATERAL (
        SELECT r.ts FROM readings r
        WHERE r.device_id = d.id AND r.ts > %(since)s
        ORDER BY r.ts DESC LIMIT 1
    ) last ON true
"""


async def freshness(conn: AsyncConnection[Any], *, since: datetime) -> list[dict[str, Any]]:
    """Per domain: devices, devices heard since `since`, the newest reading."""
    cur = await conn.execute(
        f"""
        SELECT d.domain, count(*) AS devices, count(last.ts) AS reporting,
               max(last.ts) AS last_reading_at
        FROM devices d {_LAST}
        WHERE d.deleted_at IS NULL
        GROUP BY d.domain ORDER BY d.domain
        """,
        {"since": since},
    )
    return await cur.fetchall()


async def devices(
    conn: AsyncConnection[Any],
    *,
    query: str | None,
    domain: str | None,
    since: datetime,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Devices whose id or name contains `query`, by id, each with its newest reading time."""
    where = "d.deleted_at IS NULL AND (%(domain)s::text IS NULL OR d.domain = %(domain)s)"
    where += (
        " AND (%(q)s::text IS NULL OR d.id ILIKE %(pattern)s OR coalesce(d.name, '') ILIKE"
        " %(pattern)s)"
    )
    pattern = None if query is None else f"%{_escape_like(query)}%"
    params = {
        "domain": domain,
        "q": query,
        "pattern": pattern,
        "since": since,
        "limit": limit,
        "offset": offset,
    }
    cur = await conn.execute(
        f"""
        SELECT d.id, d.domain, d.name, d.lat, d.lon, d.created_at, last.ts AS last_reading_at
        FROM devices d {_LAST}
        WHERE {where} ORDER BY d.id LIMIT %(limit)s OFFSET %(offset)s
        """,
        params,
    )
    rows = await cur.fetchall()
    cur = await conn.execute(f"SELECT count(*) AS n FROM devices d WHERE {where}", params)
    total = (await cur.fetchone() or {"n": 0})["n"]
    return rows, int(total)


def _escape_like(text: str) -> str:
    r"""`text` matched literally by ILIKE (backslash is PostgreSQL's default escape).

    >>> _escape_like("bin_1%")
    'bin\\_1\\%'
    """
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
