"""The energy service's tables: writes (inside the runtime's transaction) and queries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from services.energy.domain.meter import EpisodeRow, ForecastRow, ScoreRow
from shared.runtime.tables import (
    insert_rows,
    latest_forecast,
    upsert_forecasts,
)
from shared.townzone import bin_origin


async def write_rows(conn: AsyncConnection[DictRow], rows: list[Any]) -> None:
    scores = [r for r in rows if isinstance(r, ScoreRow)]
    # The last version of an episode or forecast in the batch is the one to keep.
    episodes = {(r.device_id, r.kind, r.started_at): r for r in rows if isinstance(r, EpisodeRow)}
    forecasts = {(r.device_id, r.target_ts): r for r in rows if isinstance(r, ForecastRow)}
    await insert_rows(
        conn,
        "energy_scores",
        [
            ("device_id", "text"),
            ("ts", "timestamptz"),
            ("observed", "float8"),
            ("expected", "float8"),
            ("lower", "float8"),
            ("upper", "float8"),
            ("score", "float8"),
            ("is_anomaly", "bool"),
            ("kind", "text"),
        ],
        [
            (
                r.device_id,
                r.ts,
                r.observed,
                r.expected,
                r.lower,
                r.upper,
                r.score,
                r.is_anomaly,
                r.kind,
            )
            for r in scores
        ],
        conflict="ON CONFLICT (device_id, ts) DO NOTHING",
    )
    await insert_rows(
        conn,
        "energy_episodes",
        [
            ("device_id", "text"),
            ("kind", "text"),
            ("started_at", "timestamptz"),
            ("ended_at", "timestamptz"),
            ("severity", "text"),
            ("peak_score", "float8"),
            ("observed_kwh", "float8"),
            ("expected_kwh", "float8"),
            ("readings", "int4"),
        ],
        [
            (
                r.device_id,
                r.kind,
                r.started_at,
                r.ended_at,
                r.severity,
                r.peak_score,
                r.observed_kwh,
                r.expected_kwh,
                r.readings,
            )
            for r in episodes.values()
        ],
        conflict="""
        ON CONFLICT (device_id, kind, started_at) DO UPDATE SET
            ended_at = EXCLUDED.ended_at, severity = EXCLUDED.severity,
            peak_score = EXCLUDED.peak_score, observed_kwh = EXCLUDED.observed_kwh,
            expected_kwh = EXCLUDED.expected_kwh, readings = EXCLUDED.readings
        """,
    )
    await upsert_forecasts(conn, "energy_forecasts", forecasts.values())


async def anomalies(
    conn: AsyncConnection[DictRow], *, device_id: str, start: datetime, end: datetime
) -> tuple[list[DictRow], list[DictRow]]:
    cur = await conn.execute(
        """
        SELECT kind, started_at, ended_at, severity, peak_score, observed_kwh, expected_kwh,
               readings, greatest(observed_kwh - expected_kwh, 0) AS wasted_kwh
        FROM energy_episodes
        WHERE device_id = %s AND started_at < %s AND coalesce(ended_at, 'infinity') >= %s
        ORDER BY started_at
        """,
        (device_id, end, start),
    )
    episodes = await cur.fetchall()
    cur = await conn.execute(
        """
        SELECT ts, observed, expected, lower, upper, score, kind FROM energy_scores
        WHERE device_id = %s AND ts >= %s AND ts < %s AND is_anomaly ORDER BY ts LIMIT 10000
        """,
        (device_id, start, end),
    )
    return episodes, await cur.fetchall()


async def forecast(conn: AsyncConnection[DictRow], *, device_id: str) -> list[DictRow]:
    return await latest_forecast(conn, "energy_forecasts", device_id=device_id)


async def consumption(
    conn: AsyncConnection[DictRow],
    *,
    device_id: str,
    start: datetime,
    end: datetime,
    width: timedelta,
    limit: int,
    zone: str,
) -> list[DictRow]:
    """Buckets of the town's time: its calendar days (23 or 25 hours on a change of clocks)
    for a day, else bins from its midnight."""
    cur = await conn.execute(
        """
        SELECT CASE WHEN %(day)s THEN date_trunc('day', ts, %(z)s::text)
                    ELSE date_bin(%(w)s, ts, %(o)s::timestamptz) END AS bucket,
               sum(observed) AS observed_kwh, sum(expected) AS expected_kwh,
               -- The band of a bucket: the sum of its readings' intervals (an upper bound of
               -- the interval of the sum, so a bucket outside it is surely abnormal).
               sum(lower) AS lower_kwh, sum(upper) AS upper_kwh,
               count(*) AS readings, count(*) FILTER (WHERE is_anomaly) AS anomalous
        FROM energy_scores WHERE device_id = %(d)s AND ts >= %(s)s AND ts < %(e)s
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


async def summary(
    conn: AsyncConnection[DictRow], *, start: datetime, end: datetime
) -> dict[str, Any]:
    cur = await conn.execute(
        """
        SELECT coalesce(sum(observed), 0) AS total_kwh, coalesce(sum(expected), 0) AS expected_kwh,
               count(DISTINCT device_id) AS meters,
               coalesce(sum(greatest(observed - expected, 0)) FILTER (WHERE is_anomaly), 0)
                   AS wasted_kwh
        FROM energy_scores WHERE ts >= %s AND ts < %s
        """,
        (start, end),
    )
    totals = await cur.fetchone() or {}
    cur = await conn.execute(
        """
        SELECT device_id, kind, started_at, ended_at, severity, peak_score,
               greatest(observed_kwh - expected_kwh, 0) AS wasted_kwh
        FROM energy_episodes
        WHERE started_at < %s AND coalesce(ended_at, 'infinity') >= %s
        ORDER BY wasted_kwh DESC, peak_score DESC LIMIT 10
        """,
        (end, start),
    )
    return {**totals, "top_anomalies": await cur.fetchall()}
