"""Technicians' verdicts on alerts, as the domain runtimes receive them.

The alerts service writes each verdict to `alert_feedback` (migration 0014), with the device, the
kind and the episode's period. A runtime whose processor takes feedback reads, once per batch,
the verdicts on the batch's devices, like the erasure tombstones (shared/erasure.py): no service
asks another. A verdict is offered to a device's state before the first of its records received
after the verdict was given, and again before each later record within `OFFER_HORIZON`: the
processor applies each verdict once (it records which it has), so what a state holds depends only
on the stream and the table, and a replay from a checkpoint applies a verdict at the very record
where the first run did (docs/runtime.md).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from psycopg import AsyncConnection
from psycopg.rows import DictRow

Verdict = Literal["real", "false_alarm", "expected"]

# A verdict is offered to records received up to this long after it was given: far longer than
# any consumer lag or replay, so a state always sees it, and short enough that a batch's query
# reads few rows.
OFFER_HORIZON = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Feedback:
    id: int
    alert_id: str
    device_id: str
    kind: str
    verdict: Verdict
    # The episode the verdict is about; `episode_end` None: it was still going on.
    episode_start: datetime
    episode_end: datetime | None
    given_at: datetime


async def feedback_of(
    conn: AsyncConnection[DictRow],
    device_ids: Collection[str],
    *,
    received_from: datetime,
    received_to: datetime,
) -> dict[str, list[Feedback]]:
    """Verdicts on these devices that records received in [received_from, received_to] may be
    offered, oldest first (one indexed query; most devices have none)."""
    if not device_ids:
        return {}
    cur = await conn.execute(
        """
        SELECT id, alert_id, device_id, kind, verdict, episode_start, episode_end, given_at
        FROM alert_feedback
        WHERE device_id = ANY(%s) AND given_at > %s AND given_at < %s
        ORDER BY given_at, id
        """,
        (list(device_ids), received_from - OFFER_HORIZON, received_to),
    )
    out: dict[str, list[Feedback]] = {}
    for r in await cur.fetchall():
        out.setdefault(r["device_id"], []).append(Feedback(**r))
    return out


def due(feedback: list[Feedback], *, received_at: datetime) -> list[Feedback]:
    """The verdicts to offer before a record received at `received_at`.

    >>> from datetime import UTC
    >>> t = datetime(2026, 3, 2, 12, tzinfo=UTC)
    >>> f = Feedback(1, "al_1", "m-1", "energy.consumption_high", "false_alarm", t, None, t)
    >>> [len(due([f], received_at=t + d)) for d in (timedelta(0), timedelta(seconds=1),
    ...                                             OFFER_HORIZON + timedelta(seconds=1))]
    [0, 1, 0]
    """
    return [
        f for f in feedback if f.given_at < received_at and received_at - f.given_at < OFFER_HORIZON
    ]
