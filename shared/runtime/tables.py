"""Table shapes that several domain services share: episodes and forecasts.

Each service has its own tables (`traffic_episodes`, `energy_forecasts`...) with the same
columns; these functions take the table's name, a module constant of the calling service.
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from shared.runtime.episodes import EpisodeRow


async def upsert_episodes(
    conn: AsyncConnection[DictRow], table: str, rows: Iterable[EpisodeRow]
) -> None:
    """Insert episodes, or update them (end, severity, peak, count) as they go on."""
    query = sql.SQL(
        """
        INSERT INTO {} (device_id, kind, started_at, ended_at, severity, peak, readings,
            explanation)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (device_id, kind, started_at) DO UPDATE SET
            ended_at = EXCLUDED.ended_at, severity = EXCLUDED.severity,
            peak = EXCLUDED.peak, readings = EXCLUDED.readings
        """
    ).format(sql.Identifier(table))
    async with conn.cursor() as cur:
        await cur.executemany(
            query,
            [
                (
                    r.device_id,
                    r.kind,
                    r.started_at,
                    r.ended_at,
                    r.severity,
                    r.peak,
                    r.readings,
                    Jsonb(r.explanation),
                )
                for r in rows
            ],
        )


async def latest_forecast(
    conn: AsyncConnection[DictRow], table: str, *, device_id: str
) -> list[DictRow]:
    """The most recently issued forecast of a device, step by step."""
    query = sql.SQL(
        """
        SELECT target_ts, issued_at, expected, lower, upper FROM {table}
        WHERE device_id = %s AND issued_at = (
            SELECT max(issued_at) FROM {table} WHERE device_id = %s)
        ORDER BY target_ts
        """
    ).format(table=sql.Identifier(table))
    cur = await conn.execute(query, (device_id, device_id))
    return await cur.fetchall()
