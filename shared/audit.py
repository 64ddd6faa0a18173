"""The audit log: who did what to which thing, when, and how it ended.

Append-only: the table refuses UPDATE, DELETE and TRUNCATE (a trigger, so the services' own
database role, which owns the table, cannot rewrite history either).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb


async def record(
    conn: AsyncConnection[Any],
    *,
    key_id: str | None,
    role: str | None,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry, in the caller's transaction when it has one (then it commits with it)."""
    await conn.execute(
        "INSERT INTO audit_log (key_id, role, action, target, outcome, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (key_id, role, action, target, outcome, Jsonb(detail or {})),
    )


async def entries(
    conn: AsyncConnection[Any],
    *,
    action: str | None = None,
    key_id: str | None = None,
    target: str | None = None,
    outcome: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    before_id: int | None = None,
    limit: int,
) -> list[dict[str, Any]]:
    """Entries matching every given filter, newest first; `before_id` pages (keyset)."""
    cur = await conn.execute(
        """
        SELECT id, at, key_id, role, action, target, outcome, detail FROM audit_log
        WHERE (%(action)s::text IS NULL OR action = %(action)s)
          AND (%(key)s::text IS NULL OR key_id = %(key)s)
          AND (%(target)s::text IS NULL OR target = %(target)s)
          AND (%(outcome)s::text IS NULL OR outcome = %(outcome)s)
          AND (%(start)s::timestamptz IS NULL OR at >= %(start)s)
          AND (%(end)s::timestamptz IS NULL OR at < %(end)s)
          AND (%(before)s::bigint IS NULL OR id < %(before)s)
        ORDER BY id DESC LIMIT %(limit)s
        """,
        {
            "action": action,
            "key": key_id,
            "target": target,
            "outcome": outcome,
            "start": start,
            "end": end,
            "before": before_id,
            "limit": limit,
        },
    )
    return await cur.fetchall()
