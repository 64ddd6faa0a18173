"""The traffic service's tables: writes (inside the runtime's transaction) and queries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from services.traffic.domain.counter import FlowRow, ForecastRow
from shared.runtime.episodes import EpisodeRow
from shared.runtime.tables import (
    insert_rows,
    latest_forecast,
    upsert_episodes,
    upsert_forecasts,
)
from shared.townzone import bin_origin


async def write_rows(conn: AsyncConnection[DictRow], rows: list[Any]) -> None:
    flows = [r for r in rows if isinstance(r, FlowRow)]
    # The last version of a forecast or an episode in the batch is the one to keep.
    forecasts = {(r.device_id, r.target_ts): r for r in rows if isinstance(r, ForecastRow)}
    episodes = {(r.device_id, r.kind, r.started_at): r for r in rows if isinstance(r, EpisodeRow)}
    await insert_rows(
        conn,
        "traffic_flows",
        [
            ("device_id", "text"),
            ("ts", "timestamptz"),
            ("vehicles", "float8"),
            ("speed_kmh", "float8"),
            ("expected", "float8"),
            ("lower", "float8"),
            ("upper", "float8"),
            ("expected_speed", "float8"),
            ("score", "float8"),
            ("is_anomaly", "bool"),
            ("kind", "text"),
        ],
        [
            (
                r.device_id,
                r.ts,
                r.vehicles,
                r.speed_kmh,
                r.expected,
                r.lower,
                r.upper,
                r.expected_speed,
                r.score,
                r.is_anomaly,
                r.kind,
            )
            for r in flows
        ],
        conflict="ON CONFLICT (device_id, ts) DO NOTHING",
    )
    await upsert_forecasts(conn, "traffic_forecasts", forecasts.values())
    if episodes:
        await upsert_episodes(conn, "traffic_episodes", episodes.values())


async def flow(
    conn: AsyncConnection[DictRow],
    *,
    device_id: str,
    start: datetime,
    end: datetime,
    width: timedelta,
    limit: int,
    zone: str,
) -> list[DictRow]:
    """Buckets of the town's time (a flow is stamped at the end of its interval): its calendar
    days for a day, else bins from its midnight."""
    cur = await conn.execute(
        """
        SELECT CASE WHEN %(day)s THEN date_trunc('day', ts - interval '1 microsecond', %(z)s::text)
                    ELSE date_bin(%(w)s, ts - interval '1 microsecond', %(o)s::timestamptz)
               END AS bucket,
               sum(vehicles) AS vehicles, sum(expected) AS expected_vehicles,
               avg(speed_kmh) AS mean_speed_kmh, avg(expected_speed) AS expected_speed_kmh,
               count(*) AS readings, count(*) FILTER (WHERE is_anomaly) AS anomalous
        FROM traffic_flows WHERE device_id = %(d)s AND ts > %(s)s AND ts <= %(e)s
        GROUP BY 1 ORDER BY 1 LIMIT %(n)s
        """,
        {
            "day": width == timedelta(days=1),
            "w": width,
            "o": bin_origin(zone),
            "z": zone,
            "d": device_id,
            "s": start,
            "e": end,
            "n": limit,
        },
    )
    return await cur.fetchall()


async def forecast(conn: AsyncConnection[DictRow], *, device_id: str) -> list[DictRow]:
    return await latest_forecast(conn, "traffic_forecasts", device_id=device_id)


async def incidents(
    conn: AsyncConnection[DictRow],
    *,
    start: datetime,
    end: datetime,
    kind: str | None,
    limit: int,
) -> list[DictRow]:
    cur = await conn.execute(
        """
        SELECT device_id, kind, started_at, ended_at, severity, peak, readings, explanation
        FROM traffic_episodes
        WHERE started_at < %s AND coalesce(ended_at, 'infinity') >= %s
          AND (%s::text IS NULL OR kind = %s)
        ORDER BY started_at DESC LIMIT %s
        """,
        (end, start, kind, kind, limit),
    )
    return await cur.fetchall()
