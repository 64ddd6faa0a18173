"""The monthly reports' archive SQL (services/api/reports/): the rows, their PDFs, and the
`report.published` deliveries queued for the alerts service's dispatcher. The figures' own
queries are in services/api/reports/figures.py: the report's appendix prints them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

Conn = AsyncConnection[DictRow]

COLUMNS = (
    "id, period_start, period_end, lang, kind, generated_at, factors_version, size_bytes, sha256"
)


async def list_reports(conn: Conn, *, limit: int = 1000) -> list[dict[str, Any]]:
    """The archive, newest period first (no PDF bytes, no figures)."""
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM reports ORDER BY period_start DESC, period_end DESC, lang LIMIT %s",
        (limit,),
    )
    return list(await cur.fetchall())


async def get_report(conn: Conn, report_id: str, *, figures: bool = False) -> dict[str, Any] | None:
    """One archive row, with its ``figures`` if asked."""
    extra = ", figures" if figures else ""
    cur = await conn.execute(f"SELECT {COLUMNS}{extra} FROM reports WHERE id = %s", (report_id,))
    return await cur.fetchone()


async def report_pdf(conn: Conn, report_id: str) -> dict[str, Any] | None:
    """The PDF (``pdf``) and its ``sha256``."""
    cur = await conn.execute("SELECT pdf, sha256 FROM reports WHERE id = %s", (report_id,))
    return await cur.fetchone()


async def has_readings(conn: Conn, *, start: datetime, end: datetime) -> bool:
    """Whether any reading was stored in [start, end)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM readings WHERE ts >= %s AND ts < %s) AS any", (start, end)
    )
    row = await cur.fetchone()
    return bool(row and row["any"])


async def save_report(
    conn: Conn, values: dict[str, Any], *, replaces_before: datetime
) -> dict[str, Any] | None:
    """Archive a report (``values``: the columns, ``figures`` and ``pdf``); one already there is
    replaced only if generated before `replaces_before`. None: it was not (final already)."""
    cur = await conn.execute(
        f"""
        INSERT INTO reports (id, period_start, period_end, lang, kind, generated_at,
                             factors_version, figures, pdf, size_bytes, sha256)
        VALUES (%(id)s, %(period_start)s, %(period_end)s, %(lang)s, %(kind)s, %(generated_at)s,
                %(factors_version)s, %(figures)s, %(pdf)s, %(size_bytes)s, %(sha256)s)
        ON CONFLICT (id) DO UPDATE SET kind = excluded.kind,
            generated_at = excluded.generated_at, factors_version = excluded.factors_version,
            figures = excluded.figures, pdf = excluded.pdf, size_bytes = excluded.size_bytes,
            sha256 = excluded.sha256
        WHERE reports.generated_at < %(before)s
        RETURNING {COLUMNS}
        """,
        {**values, "figures": Jsonb(values["figures"]), "before": replaces_before},
    )
    return await cur.fetchone()


async def subscribers(conn: Conn, event_type: str) -> list[str]:
    """The enabled webhooks that asked for this event type."""
    cur = await conn.execute(
        "SELECT id FROM webhook_subscriptions WHERE enabled AND %s = ANY(event_types)",
        (event_type,),
    )
    return [r["id"] for r in await cur.fetchall()]


async def enqueue_event(
    conn: Conn, subs: Sequence[str], *, msg_id: str, subject: str, event_type: str, body: str
) -> None:
    """One delivery per subscription; `subject` is the outbox's ordering key (its alert_id)."""
    async with conn.cursor() as c:
        await c.executemany(
            "INSERT INTO webhook_outbox (subscription_id, msg_id, alert_id, event_type, body)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(s, msg_id, subject, event_type, body) for s in subs],
        )
