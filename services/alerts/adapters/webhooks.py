"""The webhooks' SQL: subscriptions (the admin routes) and the delivery outbox (the dispatcher).

Rows come back as dicts; deciding what a delivery's outcome means, and when to retry, is the
domain's (services/alerts/domain/webhooks.py) and the dispatcher's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

Conn = AsyncConnection[DictRow]

COLUMNS = (
    "id, url, description, domains, kinds, min_severity, event_types, retry_schedule_s, "
    "enabled, disabled_reason, created_at, updated_at, previous_secret_expires_at"
)
# Columns a PATCH may set: the names are these constants, never the client's.
PATCHABLE = (
    "url",
    "description",
    "domains",
    "kinds",
    "min_severity",
    "event_types",
    "retry_schedule_s",
    "enabled",
)

# ---- subscriptions ------------------------------------------------------------------------


async def get_subscription(conn: Conn, sub_id: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM webhook_subscriptions WHERE id = %s", (sub_id,)
    )
    return await cur.fetchone()


async def list_subscriptions(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute(f"SELECT {COLUMNS} FROM webhook_subscriptions ORDER BY created_at")
    return list(await cur.fetchall())


async def create_subscription(conn: Conn, values: dict[str, Any]) -> dict[str, Any]:
    """`values`: the PATCHABLE columns, ``id`` and the sealed ``secret``."""
    cur = await conn.execute(
        f"""
        INSERT INTO webhook_subscriptions
            (id, secret, url, description, domains, kinds, min_severity, event_types,
             retry_schedule_s, enabled)
        VALUES (%(id)s, %(secret)s, %(url)s, %(description)s, %(domains)s, %(kinds)s,
                %(min_severity)s, %(event_types)s, %(retry_schedule_s)s, %(enabled)s)
        RETURNING {COLUMNS}
        """,
        values,
    )
    row = await cur.fetchone()
    assert row is not None  # an INSERT ... RETURNING that did not raise returns its row
    return row


async def update_subscription(
    conn: Conn, sub_id: str, values: dict[str, Any]
) -> dict[str, Any] | None:
    """Set these PATCHABLE columns; enabling clears why it was disabled. None: no such one."""
    if unknown := set(values) - set(PATCHABLE):
        raise ValueError(f"not patchable: {sorted(unknown)}")
    sets = ", ".join(f"{k} = %({k})s" for k in values)
    if values.get("enabled"):
        sets += ", disabled_reason = NULL"
    cur = await conn.execute(
        f"UPDATE webhook_subscriptions SET {sets + ', ' if sets else ''}updated_at = now() "
        f"WHERE id = %(id)s RETURNING {COLUMNS}",
        {**values, "id": sub_id},
    )
    return await cur.fetchone()


async def delete_subscription(conn: Conn, sub_id: str) -> bool:
    """Its pending deliveries go with it (foreign key)."""
    cur = await conn.execute("DELETE FROM webhook_subscriptions WHERE id = %s", (sub_id,))
    return cur.rowcount == 1


async def rotate_secret(conn: Conn, sub_id: str, *, sealed: str, expires: datetime) -> bool:
    """The sealed new secret signs from now; the old one too until `expires`."""
    cur = await conn.execute(
        "UPDATE webhook_subscriptions SET previous_secret = secret, secret = %s, "
        "previous_secret_expires_at = %s, updated_at = now() WHERE id = %s",
        (sealed, expires, sub_id),
    )
    return cur.rowcount == 1


async def signing_target(conn: Conn, sub_id: str) -> dict[str, Any] | None:
    """The subscription's URL and sealed secret."""
    cur = await conn.execute(
        "SELECT url, secret FROM webhook_subscriptions WHERE id = %s", (sub_id,)
    )
    return await cur.fetchone()


async def reenable(conn: Conn, sub_id: str) -> bool:
    """Enabled again, its failure count reset. False: no such subscription."""
    cur = await conn.execute(
        "UPDATE webhook_subscriptions SET enabled = true, disabled_reason = NULL, "
        "consecutive_failures = 0, updated_at = now() WHERE id = %s",
        (sub_id,),
    )
    return cur.rowcount == 1


# ---- deliveries (the outbox) --------------------------------------------------------------


async def deliveries(
    conn: Conn,
    sub_id: str,
    *,
    state: str | None = None,
    alert_id: str | None = None,
    delivery_id: int | None = None,
    limit: int = 1,
) -> list[dict[str, Any]]:
    """Newest first, each with its attempts (``attempt_log``, a list of dicts)."""
    cur = await conn.execute(
        """
        SELECT o.id, o.msg_id, o.alert_id, o.event_type, o.status, o.attempts,
               CASE WHEN o.status = 'pending' THEN o.next_attempt_at END AS next_attempt_at,
               o.last_status_code, o.last_error, o.created_at, o.delivered_at,
               COALESCE((SELECT json_agg(json_build_object(
                    'attempt', a.attempt, 'started_at', a.started_at,
                    'latency_ms', a.latency_ms, 'status_code', a.status_code,
                    'error', a.error, 'outcome', a.outcome) ORDER BY a.attempt)
                 FROM webhook_attempts a WHERE a.outbox_id = o.id), '[]') AS attempt_log
        FROM webhook_outbox o
        WHERE o.subscription_id = %(sub)s
          AND (%(status)s::text IS NULL OR o.status = %(status)s)
          AND (%(alert)s::text IS NULL OR o.alert_id = %(alert)s)
          AND (%(id)s::bigint IS NULL OR o.id = %(id)s)
        ORDER BY o.id DESC LIMIT %(limit)s
        """,
        {"sub": sub_id, "status": state, "alert": alert_id, "id": delivery_id, "limit": limit},
    )
    return list(await cur.fetchall())


async def redeliver(conn: Conn, sub_id: str, delivery_id: int) -> bool:
    """Pending again now with a fresh retry schedule; False: no such delivery, or in flight."""
    cur = await conn.execute(
        """
        UPDATE webhook_outbox SET status = 'pending', next_attempt_at = now(),
            round_failures = 0, delivered_at = NULL
        WHERE id = %s AND subscription_id = %s AND leased_until IS NULL
        RETURNING id
        """,
        (delivery_id, sub_id),
    )
    return await cur.fetchone() is not None


async def requeue_failed(conn: Conn, sub_id: str, *, since: datetime | None) -> int:
    """Every failed delivery (created since `since`) pending again; how many."""
    cur = await conn.execute(
        """
        UPDATE webhook_outbox SET status = 'pending', next_attempt_at = now(),
            round_failures = 0, delivered_at = NULL
        WHERE subscription_id = %s AND status = 'failed'
          AND (%s::timestamptz IS NULL OR created_at >= %s::timestamptz)
        """,
        (sub_id, since, since),
    )
    return cur.rowcount


# The oldest due rows of one subscription, skipping an alert's later events while an earlier
# one is pending (in order per alert). Asked per subscription so that the partial index on
# (subscription_id, id) serves it whatever the backlog of the others.
_HEADS = """
SELECT o.id FROM webhook_outbox o
WHERE o.subscription_id = %s AND o.status = 'pending' AND o.next_attempt_at <= now()
  AND (o.leased_until IS NULL OR o.leased_until < now())
  AND NOT EXISTS (
      SELECT 1 FROM webhook_outbox p
      WHERE p.subscription_id = o.subscription_id AND p.alert_id = o.alert_id
        AND p.status = 'pending' AND p.id < o.id)
ORDER BY o.id LIMIT %s
"""

# The lease check again: another instance may have leased a row since it was read.
_LEASE = """
UPDATE webhook_outbox o
SET leased_by = %(me)s, leased_until = now() + make_interval(secs => %(lease_s)s)
FROM webhook_subscriptions s
WHERE o.id = ANY(%(ids)s) AND s.id = o.subscription_id
  AND (o.leased_until IS NULL OR o.leased_until < now())
RETURNING o.id, o.subscription_id, o.msg_id, o.body, o.attempts, o.round_failures, o.created_at,
          s.url, s.secret, s.previous_secret, s.previous_secret_expires_at, s.retry_schedule_s
"""

_RECORD_ROW = """
UPDATE webhook_outbox SET
    status = %(status)s, attempts = attempts + 1, round_failures = %(round_failures)s,
    next_attempt_at = %(next_attempt_at)s, leased_by = NULL, leased_until = NULL,
    last_status_code = %(status_code)s, last_error = %(error)s, delivered_at = %(delivered_at)s
WHERE id = %(id)s
"""

# The subscription may have been deleted (its deliveries with it) while this attempt was in
# flight: then there is nothing to record, and the insert must not fail on the foreign key.
_RECORD_ATTEMPT = """
INSERT INTO webhook_attempts
    (outbox_id, attempt, started_at, latency_ms, status_code, error, outcome)
SELECT %(id)s, %(attempt)s, %(started_at)s, %(latency_ms)s, %(status_code)s, %(error)s,
       %(outcome)s
WHERE EXISTS (SELECT 1 FROM webhook_outbox WHERE id = %(id)s)
"""


async def release_leases(conn: Conn, instance: str) -> None:
    """An instance's leases from before its restart: nothing of its is in flight now."""
    await conn.execute(
        "UPDATE webhook_outbox SET leased_by = NULL, leased_until = NULL "
        "WHERE leased_by = %s AND status = 'pending'",
        (instance,),
    )


async def enabled_subscriptions(conn: Conn) -> list[str]:
    cur = await conn.execute("SELECT id FROM webhook_subscriptions WHERE enabled")
    return sorted(r["id"] for r in await cur.fetchall())


async def due_heads(conn: Conn, sub_id: str, *, limit: int) -> list[int]:
    cur = await conn.execute(_HEADS, (sub_id, limit))
    return [r["id"] for r in await cur.fetchall()]


async def lease(conn: Conn, ids: list[int], *, instance: str, lease_s: float) -> list[DictRow]:
    """The rows still free, leased to `instance`, with what sending them needs."""
    cur = await conn.execute(_LEASE, {"ids": ids, "me": instance, "lease_s": lease_s})
    return list(await cur.fetchall())


async def record_results(
    conn: Conn, rows: Sequence[dict[str, Any]], attempts: Sequence[dict[str, Any]]
) -> None:
    """Each delivery's new status (its lease released) and its attempt's log line."""
    async with conn.cursor() as cur:
        await cur.executemany(_RECORD_ROW, rows)
        await cur.executemany(_RECORD_ATTEMPT, attempts)


async def count_failures(conn: Conn, sub_id: str, *, delivered: bool, failed: int) -> int | None:
    """The subscription's deliveries failed in a row (0 once one was delivered); None: gone."""
    cur = await conn.execute(
        """
        UPDATE webhook_subscriptions SET
            consecutive_failures = CASE WHEN %(delivered)s THEN 0
                                        ELSE consecutive_failures + %(failed)s END
        WHERE id = %(sub)s
        RETURNING consecutive_failures
        """,
        {"sub": sub_id, "delivered": delivered, "failed": failed},
    )
    got = await cur.fetchone()
    return None if got is None else int(got["consecutive_failures"])


async def disable(conn: Conn, sub_id: str, *, reason: str) -> None:
    """Disabled with a reason an operator sees (if enabled)."""
    await conn.execute(
        "UPDATE webhook_subscriptions SET enabled = false, updated_at = now(), "
        "disabled_reason = %s WHERE id = %s AND enabled",
        (reason, sub_id),
    )


async def backlog(conn: Conn) -> int:
    """Deliveries not yet done."""
    cur = await conn.execute("SELECT count(*) AS n FROM webhook_outbox WHERE status = 'pending'")
    row = await cur.fetchone()
    return int(row["n"]) if row else 0
