"""Service layer: signals in, alert changes and their outbox rows out, in the caller's transaction.

Every function here takes an open connection inside a transaction and writes the alert, its
timeline and the webhook outbox rows of its notified changes together: a change that committed
has its deliveries queued, and a change that did not has none.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter as PromCounter

from services.alerts.adapters import repository as repo
from services.alerts.domain import lifecycle, rules, webhooks
from services.alerts.domain.lifecycle import Alert, Damping, Entry, Signal, Step
from shared.erasure import erasures, exclude_erasures
from shared.schemas import AlertEvent, ReadingBatch

CHANGES = PromCounter(
    "townpulse_alerts_changes_total", "Alert changes (opened, updated, ...)", ["type"]
)


@dataclass
class Applied:
    """What a transaction did, for metrics once it committed."""

    changes: Counter[str] = field(default_factory=Counter)
    outbox: int = 0

    def add(self, other: Applied) -> None:
        self.changes.update(other.changes)
        self.outbox += other.outbox


def count(applied: Applied) -> None:
    """Metrics of a transaction that committed."""
    for type_, n in applied.changes.items():
        CHANGES.labels(type_).inc(n)


def public(alert: Alert) -> dict[str, Any]:
    """An alert as the API and webhook bodies show it."""
    return {
        "id": alert.id,
        "device_id": alert.device_id,
        "domain": alert.domain,
        "kind": alert.kind,
        "state": alert.state.value,
        "severity": alert.severity.value,
        "count": alert.count,
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "opened_at": alert.opened_at,
        "acknowledged_at": alert.acknowledged_at,
        "acknowledged_by": alert.acknowledged_by,
        "resolved_at": alert.resolved_at,
        "resolved_by": alert.resolved_by,
        "peak_value": alert.peak_value,
        "signal_active": alert.active,
        "rule_id": alert.rule_id,
        "explanation": alert.explanation,
        "version": alert.version,
    }


async def save(conn: repo.Conn, steps: Sequence[Step]) -> Applied:
    """Persist steps in order: final alert rows, timeline entries, outbox rows."""
    final: dict[str, Step] = {}
    entries: list[tuple[Alert, Entry]] = []
    for step in steps:
        final[step.alert.id] = step
        entries += [(step.alert, e) for e in step.entries]
    discarded = {i for i, s in final.items() if s.discard}
    await repo.save_alerts(conn, [s.alert for i, s in final.items() if i not in discarded])
    await repo.delete_alerts(conn, sorted(discarded))
    entries = [(a, e) for a, e in entries if a.id not in discarded]
    await repo.add_timeline(conn, [(a.id, e) for a, e in entries])
    applied = Applied()
    notified = [(a, e) for a, e in entries if e.notified]
    if notified:
        subs = await repo.subscription_filters(conn)
        rows = []
        for alert, entry in notified:
            applied.changes[entry.type] += 1
            wanted = [
                sub_id
                for sub_id, f in subs
                if f.matches(
                    event_type=entry.type,
                    domain=alert.domain,
                    kind=alert.kind,
                    severity=alert.severity,
                )
            ]
            if not wanted:
                continue
            data = {**public(alert), "version": entry.detail.get("version", alert.version)}
            body = webhooks.body(event_type=entry.type, at=entry.at, alert=data)
            msg_id = f"msg_{uuid.uuid4().hex}"
            rows += [(s, msg_id, alert.id, entry.type, body) for s in wanted]
        await repo.enqueue(conn, rows)
        applied.outbox = len(rows)
    return applied


async def apply_signals(conn: repo.Conn, signals: Sequence[tuple[Signal, Damping]]) -> Applied:
    """Apply signals in order to the current alerts of their (device, kind)."""
    if not signals:
        return Applied()
    current: dict[tuple[str, str], Alert | None] = dict(
        await repo.current_alerts(conn, {(s.device_id, s.kind) for s, _ in signals})
    )
    return await save(conn, lifecycle.apply(current, signals, new_id=_new_alert_id))


async def process(
    conn: repo.Conn,
    *,
    events: Sequence[AlertEvent],
    batches: Sequence[ReadingBatch],
    event_damping: Damping,
) -> tuple[Applied, int]:
    """One consumed Kafka batch; returns what changed and how many events were duplicates."""
    # An erased device's readings and episodes still in Kafka (this consumer lagging, or
    # replaying after a failure) would bring back its activity and alerts: dropped. An episode
    # belongs to what was erased when it began before the erasure.
    await exclude_erasures(conn)
    erased = await erasures(conn, {e.device_id for e in events} | {b.device_id for b in batches})
    if erased:
        events = [e for e in events if not _before(erased, e.device_id, e.episode_start)]
        batches = [b for b in batches if not _before(erased, b.device_id, b.received_at)]
    new_ids = await repo.claim_events(conn, [e.event_id for e in events])
    signals: list[tuple[Signal, Damping]] = []
    for event in events:
        if event.event_id in new_ids:
            new_ids.discard(event.event_id)  # the same event twice in one batch counts once
            signals.append((rules.episode_signal(event), event_damping))
    duplicates = len(events) - len(signals)
    if batches:
        all_rules = await repo.enabled_rules(conn)
        signals += _reading_signals(all_rules, batches)
        await _track_activity(conn, batches)
    return await apply_signals(conn, signals), duplicates


async def tick(conn: repo.Conn, *, now: datetime) -> Applied:
    """Time-based transitions, and silence rules."""
    steps = [s for a in await repo.due_alerts(conn) if (s := lifecycle.tick(a, now)) is not None]
    applied = await save(conn, steps)
    applied.add(await _silences(conn, now=now))
    return applied


async def operator_action(
    conn: repo.Conn, alert_id: str, *, action: str, by: str, note: str, now: datetime
) -> tuple[Alert | None, Applied]:
    """Acknowledge or resolve an alert; raises lifecycle.InvalidTransition when not allowed."""
    alert = await repo.get_alert(conn, alert_id, lock=True)
    if alert is None:
        return None, Applied()
    do = lifecycle.acknowledge if action == "ack" else lifecycle.resolve
    step = do(alert, at=now, by=by, note=note)
    if step is None:
        return alert, Applied()
    return step.alert, await save(conn, [step])


async def resolve_rule_alerts(conn: repo.Conn, rule_id: str, *, now: datetime) -> Applied:
    """A deleted or disabled rule no longer watches its alerts: close them."""
    steps = []
    for alert in await repo.alerts_of_rule(conn, rule_id):
        if alert.state is lifecycle.State.PENDING:
            steps.append(Step(alert, [], discard=True))
        elif (step := lifecycle.resolve(alert, at=now, by="rule removed")) is not None:
            steps.append(step)
    return await save(conn, steps)


# ---- internals --------------------------------------------------------------------------------


def _before(erased: dict[str, datetime], device_id: str, at: datetime) -> bool:
    when = erased.get(device_id)
    return when is not None and at <= when


def _new_alert_id() -> str:
    return f"al_{uuid.uuid4().hex[:20]}"


def _reading_signals(
    all_rules: Sequence[rules.Rule], batches: Sequence[ReadingBatch]
) -> list[tuple[Signal, Damping]]:
    threshold = [r for r in all_rules if r.op != "silent"]
    silence = [r for r in all_rules if r.op == "silent"]
    damping = {r.kind: r.damping for r in all_rules}
    out: list[tuple[Signal, Damping]] = []
    for b in batches:
        domain, device = b.domain.value, b.device_id
        for rule in silence:
            if rule.domain == domain and rule.device_id in (None, device):
                gap = 0.0
                signal = rules.silence_signal(
                    rule, device_id=device, silent=False, at=b.received_at, gap_s=gap, period_s=None
                )
                out.append((signal, rule.damping))
        if not threshold:
            continue
        for r in sorted(b.readings, key=lambda r: r.ts):
            for signal in rules.reading_signals(
                threshold, domain=domain, device_id=device, metric=r.metric, value=r.value, at=r.ts
            ):
                out.append((signal, damping[signal.kind]))
    return out


async def _track_activity(conn: repo.Conn, batches: Sequence[ReadingBatch]) -> None:
    known = await repo.device_activity(conn, sorted({b.device_id for b in batches}))
    state: dict[str, tuple[str, datetime, float | None]] = {
        d: ("", last, period) for d, (last, period) in known.items()
    }
    for b in sorted(batches, key=lambda b: b.received_at):
        _, last, period = state.get(b.device_id, ("", None, None))
        if last is not None and b.received_at > last:
            gap = (b.received_at - last).total_seconds()
            period = rules.update_period(period, gap)
        if last is None or b.received_at > last:
            last = b.received_at
        state[b.device_id] = (b.domain.value, last, period)
    await repo.save_device_activity(
        conn,
        [(d, dom, last, p) for d, (dom, last, p) in state.items() if dom],
    )


async def _silences(conn: repo.Conn, *, now: datetime) -> Applied:
    silence_rules = [r for r in await repo.enabled_rules(conn) if r.op == "silent"]
    signals: list[tuple[Signal, Damping]] = []
    for rule in silence_rules:
        for row in await repo.silent_candidates(conn, domain=rule.domain, device_id=rule.device_id):
            gap = (now - row["last_at"]).total_seconds()
            period = row["period_s"]
            if rules.silence_factor_exceeded(
                gap_s=gap, usual_period_s=period, factor=rule.threshold
            ):
                # Silent since the moment it overdid its period, not since this tick.
                at = row["last_at"] + timedelta(seconds=rule.threshold * period)
                signal = rules.silence_signal(
                    rule, device_id=row["device_id"], silent=True, at=at, gap_s=gap, period_s=period
                )
                signals.append((signal, rule.damping))
    if not signals:
        return Applied()
    current = await repo.current_alerts(conn, {(s.device_id, s.kind) for s, _ in signals})
    # A device already known to be silent needs no write on every tick.
    fresh = [
        (s, d) for s, d in signals if not (a := current.get((s.device_id, s.kind))) or not a.active
    ]
    return await apply_signals(conn, fresh)
