"""The lighting service's tables: writes (inside the runtime's transaction) and queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from services.lighting.domain.circuit import CircuitRow, LightingRow
from shared.runtime.episodes import EpisodeRow
from shared.runtime.tables import insert_rows, upsert_episodes


async def write_rows(conn: AsyncConnection[DictRow], rows: list[Any]) -> None:
    readings = [r for r in rows if isinstance(r, LightingRow)]
    # The last version of a circuit or an episode in the batch is the one to keep.
    circuits = {r.device_id: r for r in rows if isinstance(r, CircuitRow)}
    episodes = {(r.device_id, r.kind, r.started_at): r for r in rows if isinstance(r, EpisodeRow)}
    await insert_rows(
        conn,
        "lighting_readings",
        [
            ("device_id", "text"),
            ("ts", "timestamptz"),
            ("is_on", "bool"),
            ("power_w", "float8"),
            ("energy_kwh", "float8"),
            ("voltage_v", "float8"),
            ("dimming_pct", "float8"),
            ("expected_w", "float8"),
            ("baseline_kwh", "float8"),
            ("kind", "text"),
        ],
        [
            (
                r.device_id,
                r.ts,
                r.is_on,
                r.power_w,
                r.energy_kwh,
                r.voltage_v,
                r.dimming_pct,
                r.expected_w,
                r.baseline_kwh,
                r.kind,
            )
            for r in readings
        ],
        conflict="ON CONFLICT (device_id, ts) DO NOTHING",
    )
    if circuits:
        await _upsert_circuits(conn, list(circuits.values()))
    if episodes:
        await upsert_episodes(conn, "lighting_episodes", episodes.values())


async def _upsert_circuits(conn: AsyncConnection[DictRow], circuits: list[CircuitRow]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO lighting_circuits
                (device_id, ts, is_on, dimming_pct, power_w, learnt_w, channels)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (device_id) DO UPDATE SET
                ts = excluded.ts, is_on = excluded.is_on, dimming_pct = excluded.dimming_pct,
                power_w = excluded.power_w, learnt_w = excluded.learnt_w,
                channels = excluded.channels
            WHERE lighting_circuits.ts <= excluded.ts
            """,
            [
                (
                    c.device_id,
                    c.ts,
                    c.is_on,
                    c.dimming_pct,
                    c.power_w,
                    Jsonb(c.learnt_w),
                    Jsonb(c.channels),
                )
                for c in circuits
            ],
        )


async def circuit(conn: AsyncConnection[DictRow], *, device_id: str) -> DictRow | None:
    cur = await conn.execute(
        "SELECT device_id, ts, is_on, dimming_pct, power_w, learnt_w, channels"
        " FROM lighting_circuits WHERE device_id = %s",
        (device_id,),
    )
    return await cur.fetchone()


async def circuits(conn: AsyncConnection[DictRow], *, limit: int) -> list[DictRow]:
    cur = await conn.execute(
        "SELECT device_id, ts, is_on, dimming_pct, power_w FROM lighting_circuits"
        " ORDER BY device_id LIMIT %s",
        (limit,),
    )
    return await cur.fetchall()


async def open_faults(conn: AsyncConnection[DictRow], *, device_id: str) -> list[DictRow]:
    cur = await conn.execute(
        "SELECT kind, started_at, severity, readings, explanation FROM lighting_episodes"
        " WHERE device_id = %s AND ended_at IS NULL ORDER BY started_at",
        (device_id,),
    )
    return await cur.fetchall()


async def savings(
    conn: AsyncConnection[DictRow], *, start: datetime, end: datetime, device_id: str | None
) -> DictRow:
    """Night-time energy against the all-night baseline, over readings with a baseline."""
    cur = await conn.execute(
        """
        SELECT count(*) AS readings, count(DISTINCT device_id) AS circuits,
               coalesce(sum(baseline_kwh), 0) AS baseline_kwh,
               coalesce(sum(coalesce(energy_kwh, 0)), 0) AS used_kwh
        FROM lighting_readings
        WHERE ts >= %(s)s AND ts < %(e)s AND baseline_kwh IS NOT NULL
          AND (%(d)s::text IS NULL OR device_id = %(d)s)
        """,
        {"s": start, "e": end, "d": device_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return row
