"""SQL for the operator API. Same queries on TimescaleDB and plain PostgreSQL (same tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from services.api.buckets import Bucket, Source
from shared.townzone import bin_origin

DEVICE_COLUMNS = "id, domain, name, lat, lon, metadata, created_at, dev_eui, external_id, profile"
# A device's newest uplink (the primary key (device_id, ts) finds it in one index probe): its
# radio link as the device page shows it. Columns prefixed `link_`, NULL without uplinks.
_WITH_LINK = f"""
    SELECT d.*, u.ts AS link_last_uplink_at, u.rssi AS link_rssi, u.snr AS link_snr,
           u.gateways AS link_gateways, u.f_cnt AS link_f_cnt, u.codec AS link_codec,
           u.codec_version AS link_codec_version
    FROM (SELECT {DEVICE_COLUMNS} FROM devices WHERE {{where}} {{tail}}) d
    LEFT JOIN LATERAL (
        SELECT ts, rssi, snr, gateways, f_cnt, codec, codec_version FROM device_uplinks
        WHERE device_id = d.id ORDER BY ts DESC LIMIT 1
    ) u ON true
"""


async def insert_device(
    conn: AsyncConnection[Any], *, device: dict[str, Any]
) -> dict[str, Any] | None:
    """Insert, or revive a deleted device with the same id; None if a live one exists."""
    rows = await insert_devices(conn, [device])
    return rows[0] if rows else None


async def lock_devices(
    conn: AsyncConnection[Any], device_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """id -> {domain, dev_eui, external_id, profile, deleted_at} of those that exist (live or
    deleted), locked till commit."""
    cur = await conn.execute(
        "SELECT id, domain, dev_eui, external_id, profile, deleted_at FROM devices"
        " WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        (device_ids,),
    )
    return {row["id"]: row for row in await cur.fetchall()}


# Two-key advisory lock (shared.erasure uses (7310, 3)): registrations naming devices by DevEUI
# or external id run one at a time, so the check below cannot miss a concurrent one. A unique
# index would catch it too, but a violation aborts the whole bulk statement, not one row.
_NAMES_LOCK = (7310, 4)


async def names_taken(
    conn: AsyncConnection[Any], *, dev_euis: list[str], external_ids: list[str]
) -> dict[tuple[str, str], str]:
    """(`dev_eui` | `external_id`, value) -> id of the live device already named so."""
    if not dev_euis and not external_ids:
        return {}
    await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _NAMES_LOCK)
    cur = await conn.execute(
        "SELECT id, dev_eui, external_id FROM devices WHERE deleted_at IS NULL"
        " AND (dev_eui = ANY(%s) OR external_id = ANY(%s))",
        (dev_euis, external_ids),
    )
    taken: dict[tuple[str, str], str] = {}
    for row in await cur.fetchall():
        if row["dev_eui"] in dev_euis:
            taken[("dev_eui", row["dev_eui"])] = row["id"]
        if row["external_id"] in external_ids:
            taken[("external_id", row["external_id"])] = row["id"]
    return taken


async def profile_domains(conn: AsyncConnection[Any], names: list[str]) -> dict[str, str]:
    """Profile name -> its domain, for those that exist."""
    if not names:
        return {}
    cur = await conn.execute(
        "SELECT name, domain FROM device_profiles WHERE name = ANY(%s)", (names,)
    )
    return {row["name"]: row["domain"] for row in await cur.fetchall()}


async def insert_devices(
    conn: AsyncConnection[Any], devices: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert, or revive deleted ones, in one statement; returns those rows (live ids: none)."""
    if not devices:
        return []
    # In id order, as lock_devices: two requests sharing new ids wait instead of deadlocking.
    devices = sorted(devices, key=lambda d: d["id"])
    cur = await conn.execute(
        f"""
        INSERT INTO devices (id, domain, name, lat, lon, metadata, dev_eui, external_id, profile)
        SELECT * FROM unnest(
            %(id)s::text[], %(domain)s::text[], %(name)s::text[], %(lat)s::float8[],
            %(lon)s::float8[], %(metadata)s::jsonb[], %(dev_eui)s::text[],
            %(external_id)s::text[], %(profile)s::text[])
        ON CONFLICT (id) DO UPDATE SET
            domain = EXCLUDED.domain, name = EXCLUDED.name, lat = EXCLUDED.lat,
            lon = EXCLUDED.lon, metadata = EXCLUDED.metadata, dev_eui = EXCLUDED.dev_eui,
            external_id = EXCLUDED.external_id, profile = EXCLUDED.profile, created_at = now(),
            deleted_at = NULL
        WHERE devices.deleted_at IS NOT NULL
        RETURNING {DEVICE_COLUMNS}
        """,
        {
            "id": [d["id"] for d in devices],
            "domain": [d["domain"] for d in devices],
            "name": [d["name"] for d in devices],
            "lat": [d["lat"] for d in devices],
            "lon": [d["lon"] for d in devices],
            "metadata": [Jsonb(d["metadata"]) for d in devices],
            **{k: [d[k] for d in devices] for k in ("dev_eui", "external_id", "profile")},
        },
    )
    return await cur.fetchall()


async def undo_insert_devices(
    conn: AsyncConnection[Any], *, new: list[str], revived: dict[str, datetime]
) -> None:
    """Take back rows insert_devices made (new ids) or revived (back to their deletion)."""
    if new:
        await conn.execute("DELETE FROM devices WHERE id = ANY(%s)", (new,))
    for device_id, deleted_at in revived.items():
        await conn.execute(
            "UPDATE devices SET deleted_at = %s WHERE id = %s", (deleted_at, device_id)
        )


async def get_device(
    conn: AsyncConnection[Any], device_id: str, *, link: bool = False
) -> dict[str, Any] | None:
    """The live device; with `link`, its newest uplink's `link_*` columns too."""
    where = "id = %(id)s AND deleted_at IS NULL"
    query = (
        _WITH_LINK.format(where=where, tail="")
        if link
        else (f"SELECT {DEVICE_COLUMNS} FROM devices WHERE {where}")
    )
    cur = await conn.execute(query, {"id": device_id})
    return await cur.fetchone()


async def update_device(conn: AsyncConnection[Any], device_id: str, values: dict[str, Any]) -> bool:
    """Change a live device's columns (names from DevicePatch only); False if there is none."""
    sets = ", ".join(f"{column} = %({column})s" for column in values)
    cur = await conn.execute(
        f"UPDATE devices SET {sets} WHERE id = %(id_)s AND deleted_at IS NULL",
        {**{k: Jsonb(v) if k == "metadata" else v for k, v in values.items()}, "id_": device_id},
    )
    return cur.rowcount > 0


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
    page = _WITH_LINK.format(where=where, tail="ORDER BY id LIMIT %(limit)s OFFSET %(offset)s")
    cur = await conn.execute(page + " ORDER BY d.id", params)
    rows = await cur.fetchall()
    cur = await conn.execute(f"SELECT count(*) AS n FROM devices WHERE {where}", params)
    total = (await cur.fetchone() or {"n": 0})["n"]
    return rows, int(total)


async def delete_device(conn: AsyncConnection[Any], device_id: str) -> bool:
    cur = await conn.execute(
        "UPDATE devices SET deleted_at = now() WHERE id = %s AND deleted_at IS NULL", (device_id,)
    )
    if cur.rowcount != 1:
        return False
    await revoke_ingest_tokens(conn, device_id)
    return True


async def uplinks(
    conn: AsyncConnection[Any], *, device_id: str, limit: int
) -> list[dict[str, Any]]:
    """A device's newest uplinks first."""
    cur = await conn.execute(
        """
        SELECT ts, source, f_port, f_cnt, codec, codec_version, rssi, snr, gateways, received_at
        FROM device_uplinks WHERE device_id = %s ORDER BY ts DESC LIMIT %s
        """,
        (device_id, limit),
    )
    return await cur.fetchall()


async def model_state(conn: AsyncConnection[Any], *, device_id: str) -> dict[str, Any]:
    """Whether the device's model is saved, until when it is learning (NULL: calibrated), and
    what of it still warms up until when (`warming`: part -> time, empty when nothing does).
    Only the columns the API may read of `runtime_state`, never the state itself."""
    cur = await conn.execute(
        """
        SELECT count(*) AS saved, max(learning_until) AS learning_until,
               coalesce(jsonb_agg(warming) FILTER (WHERE warming IS NOT NULL), '[]') AS warming
        FROM runtime_state WHERE device_id = %s
        """,
        (device_id,),
    )
    row = await cur.fetchone()
    if not row:
        return {"saved": 0, "learning_until": None, "warming": {}}
    # One checkpoint per device and service: parts of several (never seen) wait for the latest.
    warming: dict[str, str] = {}
    for parts in row["warming"]:
        for part, until in parts.items():
            warming[part] = max(warming.get(part, until), until)
    return {**dict(row), "warming": warming}


async def revoke_ingest_tokens(conn: AsyncConnection[Any], device_id: str) -> int:
    cur = await conn.execute(
        "UPDATE ingest_tokens SET revoked_at = now() WHERE device_id = %s AND revoked_at IS NULL",
        (device_id,),
    )
    return cur.rowcount


async def replace_ingest_token(
    conn: AsyncConnection[Any], *, token_id: str, device_id: str, token_hash: bytes
) -> dict[str, Any]:
    """Store a new token's hash and revoke the device's others (call inside a transaction)."""
    await revoke_ingest_tokens(conn, device_id)
    cur = await conn.execute(
        "INSERT INTO ingest_tokens (id, device_id, token_hash) VALUES (%s, %s, %s)"
        " RETURNING device_id, created_at",
        (token_id, device_id, token_hash),
    )
    row: dict[str, Any] | None = await cur.fetchone()
    assert row is not None
    return row


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
          AND bucket >= date_trunc('day', %(start)s::timestamptz, %(zone)s::text)
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
    zone: str,
) -> list[dict[str, Any]]:
    """Aggregates per bucket of the town's time: bins start at its midnight (`bin_origin`), and
    days are the daily rollup's, which are in `zone` (checked at start-up: shared/townzone.py).
    """
    cur = await conn.execute(
        _BUCKET_SQL[bucket.source],
        {
            "d": device_id,
            "start": start,
            "end": end,
            "metric": metric,
            "limit": limit,
            "width": bucket.width,
            "origin": bin_origin(zone),
            "zone": zone,
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


# ---- open data ---------------------------------------------------------------------------------
# One query per dataset a manifest declares (shared/domains.py Dataset), keyed by its id, unless
# its service serves its rows (`served_at`). Each query aggregates first and applies the floor in
# the same statement: a row under it never leaves the database. Days are the town's calendar
# days (`zone`), as in readings_daily.

_OPEN_DATA_SQL = {
    "energy-daily-public-buildings": """
        SELECT (r.bucket AT TIME ZONE %(zone)s::text)::date AS day,
               d.metadata->>'building_type' AS building_type,
               count(DISTINCT r.device_id) AS buildings,
               round(sum(r.total)::numeric, 3)::float8 AS kwh
        FROM readings_daily r JOIN devices d ON d.id = r.device_id
        WHERE d.domain = 'energy' AND d.deleted_at IS NULL AND r.metric = 'energy_kwh'
          AND d.metadata->>'building_type' = ANY(%(public_types)s)
          AND r.bucket >= %(start)s AND r.bucket < %(end)s
        GROUP BY 1, 2 HAVING count(DISTINCT r.device_id) >= %(min_devices)s
        ORDER BY 1, 2 LIMIT %(limit)s
    """,
    "waste-fill-by-zone": """
        SELECT (r.bucket AT TIME ZONE %(zone)s::text)::date AS day,
               d.metadata->>'zone' AS zone,
               count(DISTINCT r.device_id) AS bins,
               round((sum(r.total) / sum(r.n))::numeric, 1)::float8 AS mean_fill_pct,
               round(max(r.max)::numeric, 1)::float8 AS max_fill_pct
        FROM readings_daily r JOIN devices d ON d.id = r.device_id
        WHERE d.domain = 'waste' AND d.deleted_at IS NULL AND r.metric = 'fill_pct'
          AND d.metadata->>'zone' IS NOT NULL
          AND r.bucket >= %(start)s AND r.bucket < %(end)s
        GROUP BY 1, 2 HAVING count(DISTINCT r.device_id) >= %(min_devices)s
        ORDER BY 1, 2 LIMIT %(limit)s
    """,
    "traffic-hourly-counts": """
        SELECT r.bucket AS hour, r.device_id AS counter, d.metadata->>'road' AS road,
               d.metadata->>'zone' AS zone, r.total::bigint AS vehicles
        FROM readings_hourly r JOIN devices d ON d.id = r.device_id
        WHERE d.domain = 'traffic' AND d.deleted_at IS NULL AND r.metric = 'vehicles'
          AND r.bucket >= %(start)s AND r.bucket < %(end)s
          AND r.total >= %(min_vehicles)s
        ORDER BY 1, 2 LIMIT %(limit)s
    """,
    # A cabinet's district: its `district` metadata, else its `zone` (the other domains' word).
    "lighting-monthly-kwh-by-district": """
        SELECT to_char(r.bucket AT TIME ZONE %(zone)s::text, 'YYYY-MM') AS month,
               coalesce(d.metadata->>'district', d.metadata->>'zone') AS district,
               count(DISTINCT r.device_id) AS cabinets,
               min((r.bucket AT TIME ZONE %(zone)s::text)::date) AS first_day,
               max((r.bucket AT TIME ZONE %(zone)s::text)::date) AS last_day,
               round(sum(r.total)::numeric, 3)::float8 AS kwh
        FROM readings_daily r JOIN devices d ON d.id = r.device_id
        WHERE d.domain = 'lighting' AND d.deleted_at IS NULL AND r.metric = 'energy_kwh'
          AND coalesce(d.metadata->>'district', d.metadata->>'zone') IS NOT NULL
          AND r.bucket >= %(start)s AND r.bucket < %(end)s
        GROUP BY 1, 2 HAVING count(DISTINCT r.device_id) >= %(min_devices)s
        ORDER BY 1, 2 LIMIT %(limit)s
    """,
}
# What the queries above answer for (tests/services/api/test_open_data_manifests.py: the
# datasets the manifests declare and do not have their service serve, exactly).
OPEN_DATA_QUERIES = frozenset(_OPEN_DATA_SQL)


async def open_dataset_rows(
    conn: AsyncConnection[Any],
    *,
    dataset: str,
    start: datetime,
    end: datetime,
    min_devices: int,
    min_vehicles: int,
    public_building_types: list[str],
    limit: int,
    zone: str,
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        _OPEN_DATA_SQL[dataset],
        {
            "start": start,
            "end": end,
            "min_devices": min_devices,
            "min_vehicles": min_vehicles,
            "public_types": public_building_types,
            "limit": limit,
            "zone": zone,
        },
    )
    return await cur.fetchall()


async def publications(
    conn: AsyncConnection[Any], dataset: str | None = None
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT dataset, licence, published_at, published_by FROM open_data_publications "
        "WHERE %(d)s::text IS NULL OR dataset = %(d)s ORDER BY dataset",
        {"d": dataset},
    )
    return await cur.fetchall()


async def publish(
    conn: AsyncConnection[Any], *, dataset: str, licence: str, by: str
) -> dict[str, Any]:
    cur = await conn.execute(
        """
        INSERT INTO open_data_publications (dataset, licence, published_by) VALUES (%s, %s, %s)
        ON CONFLICT (dataset) DO UPDATE SET licence = EXCLUDED.licence,
            published_by = EXCLUDED.published_by
        RETURNING dataset, licence, published_at, published_by
        """,
        (dataset, licence, by),
    )
    row: dict[str, Any] | None = await cur.fetchone()
    assert row is not None
    return row


async def unpublish(conn: AsyncConnection[Any], dataset: str) -> bool:
    cur = await conn.execute("DELETE FROM open_data_publications WHERE dataset = %s", (dataset,))
    return cur.rowcount == 1


# ---- public register (services/api/register.py) -------------------------------------------------


async def register_declarations(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """What the services declared they run (shared/algorithms.py)."""
    cur = await conn.execute(
        "SELECT id, service, declaration, changed_at FROM register_algorithms ORDER BY id"
    )
    return await cur.fetchall()


async def register_latest_quality(conn: AsyncConnection[Any]) -> dict[str, dict[str, Any]]:
    """Per algorithm, its newest recorded evaluation run."""
    cur = await conn.execute(
        """
        SELECT DISTINCT ON (algorithm) algorithm, evaluated_at, recorded_at, dataset, command,
               figures
        FROM register_quality ORDER BY algorithm, evaluated_at DESC, id DESC
        """
    )
    return {r["algorithm"]: r for r in await cur.fetchall()}


async def record_quality(
    conn: AsyncConnection[Any],
    *,
    algorithm: str,
    evaluated_at: datetime,
    dataset: str,
    command: str,
    figures: dict[str, Any],
    by: str,
) -> dict[str, Any]:
    cur = await conn.execute(
        """
        INSERT INTO register_quality (algorithm, evaluated_at, dataset, command, figures,
                                      recorded_by)
        VALUES (%s, %s, %s, %s, %s, %s)
        RETURNING algorithm, evaluated_at, recorded_at, dataset, command, figures
        """,
        (algorithm, evaluated_at, dataset, command, Jsonb(figures), by),
    )
    row: dict[str, Any] | None = await cur.fetchone()
    assert row is not None
    return row


async def register_texts(conn: AsyncConnection[Any]) -> tuple[dict[str, str], datetime | None]:
    """The texts an admin set, and when the last of them changed."""
    cur = await conn.execute("SELECT key, value, updated_at FROM register_texts")
    rows = await cur.fetchall()
    return {r["key"]: r["value"] for r in rows}, max((r["updated_at"] for r in rows), default=None)


async def set_register_texts(conn: AsyncConnection[Any], *, texts: dict[str, str], by: str) -> None:
    """Set each given text; an empty one is removed (the register falls back to its default)."""
    async with conn.transaction():
        for key, value in texts.items():
            if value:
                await conn.execute(
                    """
                    INSERT INTO register_texts (key, value, updated_by) VALUES (%s, %s, %s)
                    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
                        updated_at = now(), updated_by = EXCLUDED.updated_by
                    """,
                    (key, value, by),
                )
            else:
                await conn.execute("DELETE FROM register_texts WHERE key = %s", (key,))


async def register_sensors(
    conn: AsyncConnection[Any], *, grid_deg: float, since: datetime
) -> list[dict[str, Any]]:
    """Devices per district, domain and metric: (basis, district, domain, metric, devices).

    District: the device's registered zone (metadata `zone`), else the south-west corner of
    the `grid_deg` grid cell of its position, else none. Positions are rounded down here, in
    the database: no exact position leaves it. Metrics: those a device reported since `since`
    (daily rollups); `metric` NULL rows count every device of the district and domain.
    """
    cur = await conn.execute(
        """
        WITH located AS (
            SELECT d.id, d.domain,
                   CASE WHEN nullif(d.metadata->>'zone', '') IS NOT NULL THEN 'zone'
                        WHEN d.lat IS NOT NULL AND d.lon IS NOT NULL THEN 'grid'
                        ELSE 'unlocated' END AS basis,
                   left(nullif(d.metadata->>'zone', ''), 64) AS zone,
                   CASE WHEN nullif(d.metadata->>'zone', '') IS NULL
                        THEN floor(d.lat / %(g)s) * %(g)s END AS lat_cell,
                   CASE WHEN nullif(d.metadata->>'zone', '') IS NULL
                        THEN floor(d.lon / %(g)s) * %(g)s END AS lon_cell
            FROM devices d WHERE d.deleted_at IS NULL
        ), metrics AS (
            SELECT DISTINCT device_id, metric FROM readings_daily WHERE bucket >= %(since)s
        )
        SELECT l.basis, l.zone, l.lat_cell, l.lon_cell, l.domain, m.metric,
               count(DISTINCT l.id) AS devices
        FROM located l LEFT JOIN metrics m ON m.device_id = l.id
        GROUP BY GROUPING SETS ((l.basis, l.zone, l.lat_cell, l.lon_cell, l.domain),
                                (l.basis, l.zone, l.lat_cell, l.lon_cell, l.domain, m.metric))
        HAVING GROUPING(m.metric) = 1 OR m.metric IS NOT NULL
        ORDER BY 1, 2, 3, 4, 5, 6
        """,
        {"g": grid_deg, "since": since},
    )
    return await cur.fetchall()


_API_KEY_COLUMNS = "id, name, role, created_at, revoked_at"


async def insert_api_key(
    conn: AsyncConnection[Any], *, key_id: str, name: str, role: str, key_hash: bytes
) -> dict[str, Any]:
    cur = await conn.execute(
        "INSERT INTO api_keys (id, name, role, key_hash) VALUES (%s, %s, %s, %s) "
        f"RETURNING {_API_KEY_COLUMNS}",
        (key_id, name, role, key_hash),
    )
    row: dict[str, Any] | None = await cur.fetchone()
    assert row is not None  # an INSERT ... RETURNING that did not raise returns its row
    return row


async def api_keys(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Every key (never its hash)."""
    cur = await conn.execute(f"SELECT {_API_KEY_COLUMNS} FROM api_keys ORDER BY created_at")
    return list(await cur.fetchall())


async def revoke_api_key(conn: AsyncConnection[Any], key_id: str) -> bool:
    """False: no such key, or revoked already."""
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    return cur.rowcount == 1
