"""The waste service's tables: writes (inside the runtime's transaction) and queries."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, LiteralString

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from services.waste.domain.bin import BinRow, CollectionRow, LevelRow
from shared.runtime.episodes import EpisodeRow
from shared.runtime.tables import insert_rows, upsert_episodes

BIN_COLUMNS: list[tuple[str, LiteralString]] = [
    ("device_id", "text"),
    ("ts", "timestamptz"),
    ("level", "float8"),
    ("rate_pct_h", "float8"),
    ("full_at", "timestamptz"),
    ("uncertainty_h", "float8"),
    ("crossed_at", "timestamptz"),
    ("last_collection", "timestamptz"),
    ("temperature_c", "float8"),
    ("rates", "jsonb"),
]


async def write_rows(conn: AsyncConnection[DictRow], rows: list[Any]) -> None:
    levels = [r for r in rows if isinstance(r, LevelRow)]
    collections = [r for r in rows if isinstance(r, CollectionRow)]
    # The last version of a bin's summary or of an episode in the batch is the one to keep;
    # a bin's daily rate table is kept from the last row that carried one.
    bins = {r.device_id: r for r in rows if isinstance(r, BinRow)}
    rates = {r.device_id: r.rates for r in rows if isinstance(r, BinRow) and r.rates is not None}
    episodes = {(r.device_id, r.kind, r.started_at): r for r in rows if isinstance(r, EpisodeRow)}
    await insert_rows(
        conn,
        "waste_levels",
        [
            ("device_id", "text"),
            ("ts", "timestamptz"),
            ("raw", "float8"),
            ("level", "float8"),
            ("flag", "text"),
        ],
        [(r.device_id, r.ts, r.raw, r.level, r.flag) for r in levels],
        conflict="ON CONFLICT (device_id, ts) DO NOTHING",
    )
    await insert_rows(
        conn,
        "waste_collections",
        [
            ("device_id", "text"),
            ("ts", "timestamptz"),
            ("level_before", "float8"),
            ("level_after", "float8"),
        ],
        [(r.device_id, r.ts, r.level_before, r.level_after) for r in collections],
        conflict="ON CONFLICT (device_id, ts) DO NOTHING",
    )
    await insert_rows(
        conn,
        "waste_bins",
        BIN_COLUMNS,
        [
            (
                r.device_id,
                r.ts,
                r.level,
                r.rate_pct_h,
                r.full_at,
                r.uncertainty_h,
                r.crossed_at,
                r.last_collection,
                r.temperature_c,
                Jsonb(rates[r.device_id]) if r.device_id in rates else None,
            )
            for r in bins.values()
        ],
        conflict="""
        ON CONFLICT (device_id) DO UPDATE SET
            ts = EXCLUDED.ts, level = EXCLUDED.level, rate_pct_h = EXCLUDED.rate_pct_h,
            full_at = EXCLUDED.full_at, uncertainty_h = EXCLUDED.uncertainty_h,
            crossed_at = EXCLUDED.crossed_at, last_collection = EXCLUDED.last_collection,
            temperature_c = EXCLUDED.temperature_c,
            rates = coalesce(EXCLUDED.rates, waste_bins.rates)
        """,
    )
    if episodes:
        await upsert_episodes(conn, "waste_episodes", episodes.values())


# Bin locations come from the device registry (the platform's `devices` table, written by the
# operator API): the waste service only reads it.
_BINS = """
    SELECT b.device_id AS id, d.name, d.lat, d.lon, b.ts AS updated_at, b.level AS level_pct,
           b.rate_pct_h, b.full_at, b.uncertainty_h, b.last_collection, b.temperature_c
    FROM waste_bins b LEFT JOIN devices d ON d.id = b.device_id
"""


async def bins(conn: AsyncConnection[DictRow], *, min_fill: float, limit: int) -> list[DictRow]:
    cur = await conn.execute(
        _BINS + " WHERE b.level >= %s AND (d.id IS NULL OR d.deleted_at IS NULL) "
        "ORDER BY b.level DESC, b.device_id LIMIT %s",
        (min_fill, limit),
    )
    return await cur.fetchall()


async def save_plan(
    conn: AsyncConnection[DictRow],
    *,
    day: date,
    bins: int,
    every_bins: int,
    vehicles: int,
    km: float,
    every_bin_km: float,
    fixed_visits_per_week: float,
    rounds_per_week: int,
) -> bool:
    """The day's plan, unless one is kept already; whether this one was. The monthly report
    sums these against the fixed schedule (docs/report.md)."""
    cur = await conn.execute(
        """
        INSERT INTO waste_plans (day, computed_at, bins, every_bins, vehicles, km, every_bin_km,
                                 fixed_visits_per_week, rounds_per_week)
        VALUES (%s, now(), %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (day) DO NOTHING
        """,
        (day, bins, every_bins, vehicles, km, every_bin_km, fixed_visits_per_week, rounds_per_week),
    )
    return cur.rowcount == 1


async def has_plan(conn: AsyncConnection[DictRow], *, day: date) -> bool:
    cur = await conn.execute("SELECT 1 FROM waste_plans WHERE day = %s", (day,))
    return await cur.fetchone() is not None


async def all_bins(conn: AsyncConnection[DictRow]) -> list[DictRow]:
    cur = await conn.execute(
        _BINS + " WHERE d.id IS NULL OR d.deleted_at IS NULL ORDER BY b.device_id"
    )
    return await cur.fetchall()


async def bin_detail(
    conn: AsyncConnection[DictRow],
    *,
    device_id: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> dict[str, Any] | None:
    cur = await conn.execute(
        _BINS.replace("b.temperature_c", "b.temperature_c, b.crossed_at, b.rates")
        + " WHERE b.device_id = %s",
        (device_id,),
    )
    head = await cur.fetchone()
    if head is None:
        return None
    cur = await conn.execute(
        "SELECT ts, raw, level, flag FROM waste_levels WHERE device_id = %s AND ts >= %s "
        "AND ts < %s ORDER BY ts LIMIT %s",
        (device_id, start, end, limit),
    )
    history = await cur.fetchall()
    cur = await conn.execute(
        "SELECT ts, level_before, level_after FROM waste_collections WHERE device_id = %s "
        "ORDER BY ts DESC LIMIT 20",
        (device_id,),
    )
    collections = await cur.fetchall()
    cur = await conn.execute(
        "SELECT kind, started_at, ended_at, severity, peak, readings, explanation "
        "FROM waste_episodes WHERE device_id = %s AND started_at < %s "
        "AND coalesce(ended_at, 'infinity') >= %s ORDER BY started_at",
        (device_id, end, start),
    )
    episodes = await cur.fetchall()
    return {**head, "history": history, "collections": collections, "anomalies": episodes}
