"""Erasure of a device: every row that names it, in one transaction.

Readings, every row derived from them (the rows of each domain's tables that name a device, as
its manifest declares them: scores, levels, flows, forecasts, episodes, collections, bin state,
shared/domains.py), its alerts with their timelines and verdicts and the webhook messages about them
(bodies and attempts), dead letters, model state, queued events, processed-event ids, rules
aimed at it, its uplinks' link health and its HTTP push tokens, and the device itself, so that
a device registered later with the same id starts empty.

The hourly/daily aggregates are erased too when asked; otherwise they are kept under an
anonymous id (`erased-<random>`) so that the town's totals still add up while nothing links
them to the device or to a later device with the same id.

What Kafka still holds about an erased device (readings, episode events) must not bring it back:
its consumers ask `erasures()` and skip what was received, or began, before the erasure. A check
cannot see an erasure that commits while the checking transaction is still writing, so every
writer of rows naming devices first calls `exclude_erasures()`: one advisory lock, shared by the
writers, exclusive for an erasure. An erasure waits for the writers' transactions in flight, and
a writer arriving during an erasure waits for it and then sees it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from datetime import datetime
from typing import Any, LiteralString

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from shared import domains, retention

# (table, column naming the device) of the platform's own tables; the domains' come from their
# manifests (device_tables). Order matters only for foreign keys: none point at these.
PLATFORM_DEVICE_TABLES: tuple[tuple[str, str], ...] = (
    ("readings", "device_id"),
    ("runtime_state", "device_id"),
    ("alert_device_activity", "device_id"),
    ("alert_rules", "device_id"),
    # Also removed with its alerts (ON DELETE CASCADE); named here for the verdicts' own copy.
    ("alert_feedback", "device_id"),
    ("device_uplinks", "device_id"),
    ("ingest_tokens", "device_id"),
)
AGGREGATES = ("readings_hourly", "readings_daily")


def device_tables() -> tuple[tuple[str, str], ...]:
    """(table, column naming the device) of every table whose rows an erasure deletes by device:
    the platform's and each registered domain's (their manifests' tables with a device column).
    """
    return (
        *PLATFORM_DEVICE_TABLES,
        *(
            (table.name, table.device_column)
            for manifest in domains.registered()
            for table in manifest.tables
            if table.device_column is not None
        ),
    )


# Two-key advisory locks do not overlap the single-key ones the migrations take.
_ERASURE_LOCK = (7310, 3)


async def exclude_erasures(conn: AsyncConnection[Any]) -> None:
    """Until this transaction ends no erasure commits, and the statements after this one see
    any erasure committed before it. Writers share the lock: they never wait for each other."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", _ERASURE_LOCK)


async def erasures(
    conn: AsyncConnection[DictRow], device_ids: Collection[str]
) -> dict[str, datetime]:
    """When each of these devices was last erased (one indexed query; most never were)."""
    if not device_ids:
        return {}
    cur = await conn.execute(
        "SELECT device_id, erased_at FROM device_erasures WHERE device_id = ANY(%s)",
        (list(device_ids),),
    )
    return {r["device_id"]: r["erased_at"] for r in await cur.fetchall()}


async def _materialization(conn: AsyncConnection[Any], view: str) -> sql.Composable:
    """Where a continuous aggregate's rows really live (a view cannot be written to)."""
    cur = await conn.execute(
        "SELECT materialization_hypertable_schema, materialization_hypertable_name"
        " FROM timescaledb_information.continuous_aggregates WHERE view_name = %s",
        (view,),
    )
    row = await cur.fetchone()
    assert row is not None, f"{view} is not a continuous aggregate"
    schema, name = row.values() if isinstance(row, dict) else row
    return sql.Identifier(schema, name)


async def erase_device(
    conn: AsyncConnection[Any], *, device_id: str, topic: str, erase_aggregates: bool
) -> dict[str, Any]:
    """Erase what names `device_id` (the caller holds the transaction); what was removed."""
    # First: the writers' transactions in flight end before any row is erased (see above).
    await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _ERASURE_LOCK)
    counts: dict[str, int] = {}

    async def run(
        label: str, query: LiteralString | sql.SQL | sql.Composed, params: tuple[Any, ...]
    ) -> None:
        cur = await conn.execute(query, params)
        counts[label] = counts.get(label, 0) + max(cur.rowcount, 0)

    # The webhook messages about its alerts name it in their bodies, pending or delivered;
    # their attempts go with them (ON DELETE CASCADE), as do the alerts' timelines.
    await run(
        "webhook_outbox",
        "DELETE FROM webhook_outbox WHERE alert_id IN (SELECT id FROM alerts WHERE device_id = %s)",
        (device_id,),
    )
    await run("alerts", "DELETE FROM alerts WHERE device_id = %s", (device_id,))
    # Event ids start with the device id (AlertEvent.make_id).
    await run(
        "alert_processed_events",
        "DELETE FROM alert_processed_events WHERE left(event_id, length(%s) + 1) = %s || ':'",
        (device_id, device_id),
    )
    await run(
        "runtime_outbox",
        "DELETE FROM runtime_outbox WHERE key = convert_to(%s, 'UTF8')",
        (device_id,),
    )
    # A dead letter may name the device only by the topic it was sent on.
    await run(
        "deadletters",
        "DELETE FROM deadletters WHERE device_id = %s OR topic = %s",
        (device_id, topic),
    )
    for table, column in device_tables():
        await run(
            table,
            sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                sql.Identifier(table), sql.Identifier(column)
            ),
            (device_id,),
        )

    timescale = await retention.backend(conn) == "timescaledb"
    anonymous = None if erase_aggregates else f"erased-{secrets.token_hex(6)}"
    for view in AGGREGATES:
        target = await _materialization(conn, view) if timescale else sql.Identifier(view)
        if anonymous is None:
            await run(
                view, sql.SQL("DELETE FROM {} WHERE device_id = %s").format(target), (device_id,)
            )
        else:
            await run(
                view,
                sql.SQL("UPDATE {} SET device_id = %s WHERE device_id = %s").format(target),
                (anonymous, device_id),
            )
    await run("devices", "DELETE FROM devices WHERE id = %s", (device_id,))
    # What Kafka still holds about it must not be stored again (storage/adapters/writer.py).
    await conn.execute(
        "INSERT INTO device_erasures (device_id) VALUES (%s)"
        " ON CONFLICT (device_id) DO UPDATE SET erased_at = now()",
        (device_id,),
    )
    return {
        "rows": counts,
        "aggregates": "erased" if anonymous is None else "anonymised",
        "anonymous_id": anonymous,
    }


def pseudonym(key: bytes, device_id: str) -> str:
    """The audit log's name for an erased device: keyed, so that nobody without the key (not
    the database, which never holds it) can tell which id it was by trying ids.

    >>> pseudonym(b"k" * 32, "meter-1")
    'erased-efb3d401c6650f3f7323d617'
    """
    digest = hmac.new(key, device_id.encode(), hashlib.sha256).hexdigest()
    return f"erased-{digest[:24]}"


async def pseudonymise_audit(conn: AsyncConnection[Any], *, device_id: str, key: bytes) -> int:
    """Replace the device's id by its pseudonym in every audit entry (targets, paths, created
    ids, details), in the caller's transaction; the entries are kept. Entries naming it.

    The audit log refuses UPDATE to every role but the maintenance role; a function that runs
    as that role does this and nothing else (shared/migrations/versions/0009_roles.py).
    """
    cur = await conn.execute(
        "SELECT townpulse_pseudonymise_audit(%s, %s) AS n", (device_id, pseudonym(key, device_id))
    )
    row = await cur.fetchone()
    assert row is not None
    return int(next(iter(row.values())) if isinstance(row, dict) else row[0])
