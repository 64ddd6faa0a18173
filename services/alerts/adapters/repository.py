"""SQL for alerts, rules, consumer state and the webhook outbox. Values always go as parameters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from services.alerts.domain.lifecycle import Alert, Damping, Entry, State
from services.alerts.domain.rules import Rule
from services.alerts.domain.webhooks import Filters
from shared.schemas import Severity

Conn = AsyncConnection[DictRow]

ALERT_COLUMNS = (
    "id, device_id, domain, kind, rule_id, state, severity, count, first_seen, last_seen, "
    "last_observed_at, active, active_since, clear_since, peak_value, explanation, "
    "min_duration_s, cooldown_s, opened_at, acknowledged_at, acknowledged_by, resolved_at, "
    "resolved_by, version"
)
_ALERT_FIELDS = [c.strip() for c in ALERT_COLUMNS.split(",")]

UPSERT_ALERT = f"""
INSERT INTO alerts ({ALERT_COLUMNS})
VALUES ({", ".join(f"%({c})s" for c in _ALERT_FIELDS)})
ON CONFLICT (id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in _ALERT_FIELDS if c != "id")},
    updated_at = now()
"""

RULE_COLUMNS = (
    "id, name, domain, device_id, metric, op, threshold, hysteresis, severity, kind, "
    "min_duration_s, cooldown_s, enabled, created_at, updated_at"
)


# ---- alerts ----------------------------------------------------------------------------------


def alert_from_row(r: dict[str, Any]) -> Alert:
    return Alert(
        id=r["id"],
        device_id=r["device_id"],
        domain=r["domain"],
        kind=r["kind"],
        rule_id=r["rule_id"],
        state=State(r["state"]),
        severity=Severity(r["severity"]),
        count=r["count"],
        first_seen=r["first_seen"],
        last_seen=r["last_seen"],
        last_observed_at=r["last_observed_at"],
        active=r["active"],
        active_since=r["active_since"],
        clear_since=r["clear_since"],
        damping=Damping(min_duration_s=r["min_duration_s"], cooldown_s=r["cooldown_s"]),
        peak_value=r["peak_value"],
        explanation=r["explanation"],
        opened_at=r["opened_at"],
        acknowledged_at=r["acknowledged_at"],
        acknowledged_by=r["acknowledged_by"],
        resolved_at=r["resolved_at"],
        resolved_by=r["resolved_by"],
        version=r["version"],
    )


def _alert_params(a: Alert) -> dict[str, Any]:
    return {
        **{f: getattr(a, f) for f in _ALERT_FIELDS if hasattr(a, f)},
        "state": a.state.value,
        "severity": a.severity.value,
        "explanation": Jsonb(a.explanation),
        "min_duration_s": a.damping.min_duration_s,
        "cooldown_s": a.damping.cooldown_s,
    }


async def current_alerts(
    conn: Conn, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Alert]:
    """The current alert of each (device, kind), locked until the transaction ends."""
    keys = list(keys)
    if not keys:
        return {}
    cur = await conn.execute(
        f"""
        SELECT {ALERT_COLUMNS} FROM alerts
        WHERE state <> 'resolved'
          AND (device_id, kind) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
        ORDER BY id FOR UPDATE
        """,
        ([k[0] for k in keys], [k[1] for k in keys]),
    )
    return {(r["device_id"], r["kind"]): alert_from_row(r) for r in await cur.fetchall()}


async def get_alert(conn: Conn, alert_id: str, *, lock: bool = False) -> Alert | None:
    cur = await conn.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s AND state <> 'pending'"
        + (" FOR UPDATE" if lock else ""),
        (alert_id,),
    )
    row = await cur.fetchone()
    return alert_from_row(row) if row else None


async def due_alerts(conn: Conn) -> list[Alert]:
    """Alerts that time alone can move: pending and active, or open and cleared."""
    cur = await conn.execute(
        f"""
        SELECT {ALERT_COLUMNS} FROM alerts
        WHERE (state = 'pending' AND active) OR (state IN ('open', 'acknowledged') AND NOT active)
        ORDER BY id FOR UPDATE SKIP LOCKED
        """
    )
    return [alert_from_row(r) for r in await cur.fetchall()]


async def list_alerts(
    conn: Conn,
    *,
    state: str | None,
    domain: str | None,
    severity: str | None,
    device_id: str | None,
    kind: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[Alert]:
    """Alerts that were open at some point in [start, end), newest first."""
    cur = await conn.execute(
        f"""
        SELECT {ALERT_COLUMNS} FROM alerts
        WHERE state <> 'pending'
          AND (%(state)s::text IS NULL OR state = %(state)s)
          AND (%(domain)s::text IS NULL OR domain = %(domain)s)
          AND (%(severity)s::text IS NULL OR severity = %(severity)s)
          AND (%(device_id)s::text IS NULL OR device_id = %(device_id)s)
          AND (%(kind)s::text IS NULL OR kind = %(kind)s)
          AND (%(end)s::timestamptz IS NULL OR opened_at < %(end)s)
          AND (%(start)s::timestamptz IS NULL OR resolved_at IS NULL OR resolved_at >= %(start)s)
        ORDER BY opened_at DESC, id LIMIT %(limit)s
        """,
        {
            "state": state,
            "domain": domain,
            "severity": severity,
            "device_id": device_id,
            "kind": kind,
            "start": start,
            "end": end,
            "limit": limit,
        },
    )
    return [alert_from_row(r) for r in await cur.fetchall()]


async def timeline(conn: Conn, alert_id: str) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT at, type, detail FROM alert_timeline WHERE alert_id = %s ORDER BY id", (alert_id,)
    )
    return list(await cur.fetchall())


async def save_alerts(conn: Conn, alerts: Sequence[Alert]) -> None:
    if alerts:
        async with conn.cursor() as cur:
            await cur.executemany(UPSERT_ALERT, [_alert_params(a) for a in alerts])


async def delete_alerts(conn: Conn, ids: Sequence[str]) -> None:
    if ids:
        await conn.execute("DELETE FROM alerts WHERE id = ANY(%s)", (list(ids),))


async def add_timeline(conn: Conn, entries: Sequence[tuple[str, Entry]]) -> None:
    if entries:
        async with conn.cursor().copy(
            "COPY alert_timeline (alert_id, at, type, detail) FROM STDIN"
        ) as copy:
            for alert_id, e in entries:
                await copy.write_row((alert_id, e.at, e.type, Jsonb(e.detail)))


# ---- consumer state --------------------------------------------------------------------------


async def claim_events(conn: Conn, event_ids: Sequence[str]) -> set[str]:
    """Record episode events as processed; returns the ids that were not already."""
    if not event_ids:
        return set()
    cur = await conn.execute(
        "INSERT INTO alert_processed_events (event_id) SELECT DISTINCT unnest(%s::text[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        (list(event_ids),),
    )
    return {r["event_id"] for r in await cur.fetchall()}


async def load_offsets(conn: Conn, group_id: str) -> dict[tuple[str, int], int]:
    cur = await conn.execute(
        "SELECT topic, partition, next_offset FROM alert_consumer_offsets WHERE group_id = %s",
        (group_id,),
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in await cur.fetchall()}


async def save_offsets(conn: Conn, group_id: str, offsets: dict[tuple[str, int], int]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO alert_consumer_offsets (group_id, topic, partition, next_offset)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (group_id, topic, partition)
            DO UPDATE SET next_offset = EXCLUDED.next_offset
            """,
            [(group_id, t, p, o) for (t, p), o in offsets.items()],
        )


async def device_activity(
    conn: Conn, device_ids: Sequence[str]
) -> dict[str, tuple[datetime, float | None]]:
    cur = await conn.execute(
        "SELECT device_id, last_at, period_s FROM alert_device_activity WHERE device_id = ANY(%s)",
        (list(device_ids),),
    )
    return {r["device_id"]: (r["last_at"], r["period_s"]) for r in await cur.fetchall()}


async def save_device_activity(
    conn: Conn, rows: Sequence[tuple[str, str, datetime, float | None]]
) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO alert_device_activity (device_id, domain, last_at, period_s)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (device_id) DO UPDATE SET
                domain = EXCLUDED.domain, last_at = EXCLUDED.last_at, period_s = EXCLUDED.period_s
            """,
            rows,
        )


async def silent_candidates(
    conn: Conn, *, domain: str, device_id: str | None
) -> list[dict[str, Any]]:
    """Registered devices of a domain with a known period, for the silence rules."""
    cur = await conn.execute(
        """
        SELECT a.device_id, a.last_at, a.period_s FROM alert_device_activity a
        JOIN devices d ON d.id = a.device_id AND d.deleted_at IS NULL
        WHERE a.domain = %s AND a.period_s IS NOT NULL
          AND (%s::text IS NULL OR a.device_id = %s)
        """,
        (domain, device_id, device_id),
    )
    return list(await cur.fetchall())


# ---- rules -----------------------------------------------------------------------------------


def rule_from_row(r: dict[str, Any]) -> Rule:
    return Rule(
        id=r["id"],
        name=r["name"],
        domain=r["domain"],
        device_id=r["device_id"],
        metric=r["metric"],
        op=r["op"],
        threshold=r["threshold"],
        hysteresis=r["hysteresis"],
        severity=Severity(r["severity"]),
        kind=r["kind"],
        damping=Damping(min_duration_s=r["min_duration_s"], cooldown_s=r["cooldown_s"]),
    )


async def enabled_rules(conn: Conn) -> list[Rule]:
    cur = await conn.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE enabled")
    return [rule_from_row(r) for r in await cur.fetchall()]


async def list_rules(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY created_at, id")
    return list(await cur.fetchall())


async def get_rule(conn: Conn, rule_id: str) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = %s", (rule_id,))
    return await cur.fetchone()


async def upsert_rule(conn: Conn, rule: dict[str, Any]) -> dict[str, Any]:
    cur = await conn.execute(
        f"""
        INSERT INTO alert_rules (id, name, domain, device_id, metric, op, threshold, hysteresis,
                                 severity, kind, min_duration_s, cooldown_s, enabled)
        VALUES (%(id)s, %(name)s, %(domain)s, %(device_id)s, %(metric)s, %(op)s, %(threshold)s,
                %(hysteresis)s, %(severity)s, %(kind)s, %(min_duration_s)s, %(cooldown_s)s,
                %(enabled)s)
        ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name, domain = EXCLUDED.domain, device_id = EXCLUDED.device_id,
            metric = EXCLUDED.metric, op = EXCLUDED.op, threshold = EXCLUDED.threshold,
            hysteresis = EXCLUDED.hysteresis, severity = EXCLUDED.severity, kind = EXCLUDED.kind,
            min_duration_s = EXCLUDED.min_duration_s, cooldown_s = EXCLUDED.cooldown_s,
            enabled = EXCLUDED.enabled, updated_at = now()
        RETURNING {RULE_COLUMNS}
        """,
        rule,
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def delete_rule(conn: Conn, rule_id: str) -> bool:
    cur = await conn.execute("DELETE FROM alert_rules WHERE id = %s", (rule_id,))
    return cur.rowcount == 1


async def alerts_of_rule(conn: Conn, rule_id: str) -> list[Alert]:
    cur = await conn.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE rule_id = %s AND state <> 'resolved' "
        "ORDER BY id FOR UPDATE",
        (rule_id,),
    )
    return [alert_from_row(r) for r in await cur.fetchall()]


# ---- webhook subscriptions and outbox --------------------------------------------------------

SUBSCRIPTION_COLUMNS = (
    "id, url, description, domains, kinds, min_severity, event_types, retry_schedule_s, "
    "enabled, disabled_reason, created_at, updated_at, previous_secret_expires_at"
)


async def subscription_filters(conn: Conn) -> list[tuple[str, Filters]]:
    cur = await conn.execute(
        "SELECT id, domains, kinds, min_severity, event_types FROM webhook_subscriptions "
        "WHERE enabled ORDER BY id"
    )
    return [
        (
            r["id"],
            Filters(
                domains=tuple(r["domains"]) if r["domains"] is not None else None,
                kinds=tuple(r["kinds"]) if r["kinds"] is not None else None,
                min_severity=Severity(r["min_severity"]),
                event_types=tuple(r["event_types"]),
            ),
        )
        for r in await cur.fetchall()
    ]


async def enqueue(conn: Conn, rows: Sequence[tuple[str, str, str, str, str]]) -> None:
    """Outbox rows: (subscription_id, msg_id, alert_id, event_type, body)."""
    if rows:
        async with conn.cursor().copy(
            "COPY webhook_outbox (subscription_id, msg_id, alert_id, event_type, body) FROM STDIN"
        ) as copy:
            for row in rows:
                await copy.write_row(row)


# ---- feedback ---------------------------------------------------------------------------------

FEEDBACK_COLUMNS = (
    "id, alert_id, verdict, note, episode_start, episode_end, given_at, given_by, device_id, "
    "domain, kind"
)


async def add_feedback(conn: Conn, row: dict[str, Any]) -> dict[str, Any]:
    """Record a verdict (earlier ones stay: the latest counts)."""
    cur = await conn.execute(
        f"""
        INSERT INTO alert_feedback (alert_id, device_id, domain, kind, verdict, note,
                                    episode_start, episode_end, given_by)
        VALUES (%(alert_id)s, %(device_id)s, %(domain)s, %(kind)s, %(verdict)s, %(note)s,
                %(episode_start)s, %(episode_end)s, %(given_by)s)
        RETURNING {FEEDBACK_COLUMNS}
        """,
        row,
    )
    out = await cur.fetchone()
    assert out is not None
    return out


async def feedback_history(conn: Conn, alert_id: str) -> list[dict[str, Any]]:
    """Every verdict on an alert, newest first."""
    cur = await conn.execute(
        f"SELECT {FEEDBACK_COLUMNS} FROM alert_feedback WHERE alert_id = %s ORDER BY id DESC",
        (alert_id,),
    )
    return list(await cur.fetchall())


async def latest_feedback(conn: Conn, alert_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The verdict that counts (the latest) of each of these alerts that has one."""
    if not alert_ids:
        return {}
    cur = await conn.execute(
        f"""
        SELECT DISTINCT ON (alert_id) {FEEDBACK_COLUMNS} FROM alert_feedback
        WHERE alert_id = ANY(%s) ORDER BY alert_id, id DESC
        """,
        (list(alert_ids),),
    )
    return {r["alert_id"]: r for r in await cur.fetchall()}


async def verdict_counts(conn: Conn, *, since: datetime) -> list[dict[str, Any]]:
    """Per domain, alerts opened since `since` by their latest verdict ('none': no feedback)."""
    cur = await conn.execute(
        """
        SELECT a.domain, coalesce(f.verdict, 'none') AS verdict, count(*) AS n
        FROM alerts a
        LEFT JOIN LATERAL (
            SELECT verdict FROM alert_feedback WHERE alert_id = a.id ORDER BY id DESC LIMIT 1
        ) f ON true
        WHERE a.state <> 'pending' AND a.opened_at >= %s
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        (since,),
    )
    return list(await cur.fetchall())
