"""The alert lifecycle: pending -> open -> acknowledged -> resolved, with flapping damped.

Every source (an episode from a domain service, a threshold rule on readings, a silent device)
becomes a stream of `Signal`s per (device, kind): active or clear, at a time. The functions here
turn a signal, the passing of time (`tick`) or an operator's action into `Step`s: the alert as it
is now and what happened to it (timeline entries, some of which are notified by webhook).

Damping (per alert, copied from its rule or the service defaults when it is created):

- `min_duration_s`: a signal must stay active that long before the alert opens; a shorter one
  leaves no alert at all (the pending alert is discarded).
- `cooldown_s`: once the signal clears, the alert stays open that long before it resolves itself.
  A signal coming back within it is a repeat of the same alert (count + 1), so a flapping signal
  gives one alert with a count, and a new alert for the same device and kind can only open once
  the previous one's signal has been clear for `cooldown_s`.

Times are those of the signals (reading or episode times), so replaying a backlog gives the same
alerts as processing it live; `tick(now)` applies the wall clock when no signal arrives.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.schemas import Severity


class State(StrEnum):
    PENDING = "pending"
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# Timeline entries that are also alert changes sent to webhook subscribers.
NOTIFIED = frozenset({"opened", "updated", "acknowledged", "resolved"})


class InvalidTransition(ValueError):
    """An operator action that the alert's state does not allow."""


@dataclass(frozen=True, slots=True)
class Damping:
    min_duration_s: float = 0.0
    cooldown_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Signal:
    device_id: str
    domain: str
    kind: str
    active: bool
    at: datetime
    severity: Severity = Severity.WARNING
    value: float | None = None
    # +1: higher values are worse (the peak is the maximum); -1: lower values are worse.
    direction: int = 1
    explanation: dict[str, Any] = field(default_factory=dict)
    rule_id: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of an alert's timeline."""

    type: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def notified(self) -> bool:
        return self.type in NOTIFIED


@dataclass(slots=True)
class Alert:
    id: str
    device_id: str
    domain: str
    kind: str
    state: State
    severity: Severity
    count: int
    first_seen: datetime
    last_seen: datetime
    last_observed_at: datetime
    active: bool
    active_since: datetime | None
    clear_since: datetime | None
    damping: Damping
    rule_id: str | None = None
    peak_value: float | None = None
    explanation: dict[str, Any] = field(default_factory=dict)
    opened_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    # Incremented by every notified change: receivers order and deduplicate with it.
    version: int = 0

    @property
    def current(self) -> bool:
        return self.state is not State.RESOLVED


@dataclass(slots=True)
class Step:
    """An alert after a transition and what happened to it; `discard`: delete the pending alert."""

    alert: Alert
    entries: list[Entry]
    discard: bool = False


def observe(alert: Alert | None, signal: Signal, *, damping: Damping, new_id: str) -> list[Step]:
    """Apply one signal to the current alert of its (device, kind), if any.

    `damping` and `new_id` are used only if the signal starts a new alert.
    """
    steps: list[Step] = []
    entries: list[Entry] = []
    if alert is not None:
        if signal.at < alert.last_observed_at:
            return []  # older than what this alert already saw: out of order, ignore
        # The wall clock may not have ticked since the signal cleared: settle that first.
        settled = _settle(alert, signal.at)
        if settled is not None and not settled.alert.current:
            steps.append(settled)
            alert = None
        elif settled is not None:
            alert, entries = settled.alert, settled.entries
    if alert is None:
        if signal.active:
            steps.append(_start(signal, damping=damping, new_id=new_id))
        return steps
    alert = replace(alert, explanation=dict(alert.explanation))
    alert.last_observed_at = signal.at
    if signal.active:
        _absorb(alert, signal)
        if signal.severity.rank > alert.severity.rank:
            alert.severity = signal.severity
            if alert.state is not State.PENDING:
                entries.append(_notify(alert, "updated", signal.at, reason="escalated"))
        if not alert.active:
            alert.active, alert.active_since, alert.clear_since = True, signal.at, None
            alert.count += 1
            if alert.state is not State.PENDING:
                entries.append(_notify(alert, "updated", signal.at, reason="repeat"))
        if alert.state is State.PENDING:
            entries += _maybe_open(alert, signal.at)
    elif alert.active:
        alert.active, alert.clear_since = False, signal.at
        if alert.state is State.PENDING:
            return [Step(alert, [Entry("cleared", signal.at)], discard=True)]
        entries.append(Entry("cleared", signal.at, {"value": signal.value}))
        settled = _settle(alert, signal.at)  # a zero cool-down resolves at once
        if settled is not None:
            alert, entries = settled.alert, entries + settled.entries
    steps.append(Step(alert, entries))
    return steps


def apply(
    current: MutableMapping[tuple[str, str], Alert | None],
    signals: Sequence[tuple[Signal, Damping]],
    *,
    new_id: Callable[[], str],
) -> list[Step]:
    """Apply signals in order to the current alerts of their (device, kind), kept up to date in
    `current`: what the service does with a consumed batch, and a replay with a whole series."""
    steps: list[Step] = []
    for signal, damping in signals:
        key = (signal.device_id, signal.kind)
        for step in observe(current.get(key), signal, damping=damping, new_id=new_id()):
            steps.append(step)
            current[key] = None if step.discard or not step.alert.current else step.alert
    return steps


def tick(alert: Alert, now: datetime) -> Step | None:
    """Let time pass: open a pending alert whose minimum duration elapsed, resolve a cleared one."""
    return _settle(alert, now)


def acknowledge(alert: Alert, *, at: datetime, by: str, note: str = "") -> Step | None:
    """An operator takes the alert in hand; None if it already was."""
    if alert.state is State.ACKNOWLEDGED:
        return None
    if alert.state is not State.OPEN:
        raise InvalidTransition(f"cannot acknowledge a {alert.state.value} alert")
    alert = replace(alert, state=State.ACKNOWLEDGED, acknowledged_at=at, acknowledged_by=by)
    return Step(alert, [_notify(alert, "acknowledged", at, by=by, note=note)])


def resolve(alert: Alert, *, at: datetime, by: str, note: str = "") -> Step | None:
    """An operator (or a deleted rule) closes the alert; None if it was already resolved."""
    if alert.state is State.RESOLVED:
        return None
    if alert.state is State.PENDING:
        raise InvalidTransition("cannot resolve an alert that has not opened")
    return _resolve(alert, at=at, by=by, note=note)


# ---- internals --------------------------------------------------------------------------------


def _start(signal: Signal, *, damping: Damping, new_id: str) -> Step:
    alert = Alert(
        id=new_id,
        device_id=signal.device_id,
        domain=signal.domain,
        kind=signal.kind,
        rule_id=signal.rule_id,
        state=State.PENDING,
        severity=signal.severity,
        count=1,
        first_seen=signal.at,
        last_seen=signal.at,
        last_observed_at=signal.at,
        active=True,
        active_since=signal.at,
        clear_since=None,
        damping=damping,
        peak_value=signal.value,
        explanation=dict(signal.explanation),
    )
    entries = [Entry("activated", signal.at, {"value": signal.value})]
    entries += _maybe_open(alert, signal.at)
    return Step(alert, entries)


def _absorb(alert: Alert, signal: Signal) -> None:
    alert.last_seen = max(alert.last_seen, signal.at)
    if signal.value is not None and (
        alert.peak_value is None or (signal.value - alert.peak_value) * signal.direction > 0
    ):
        alert.peak_value = signal.value
    if signal.explanation:
        alert.explanation = dict(signal.explanation)


def _maybe_open(alert: Alert, now: datetime) -> list[Entry]:
    assert alert.active_since is not None
    opens_at = alert.active_since + timedelta(seconds=alert.damping.min_duration_s)
    if not alert.active or now < opens_at:
        return []
    alert.state, alert.opened_at = State.OPEN, opens_at
    return [_notify(alert, "opened", opens_at)]


def _settle(alert: Alert, now: datetime) -> Step | None:
    if alert.state is State.PENDING and alert.active:
        copy = replace(alert)
        entries = _maybe_open(copy, now)
        return Step(copy, entries) if entries else None
    if alert.state in (State.OPEN, State.ACKNOWLEDGED) and not alert.active:
        assert alert.clear_since is not None
        resolves_at = alert.clear_since + timedelta(seconds=alert.damping.cooldown_s)
        if now >= resolves_at:
            return _resolve(alert, at=resolves_at, by="signal")
    return None


def _resolve(alert: Alert, *, at: datetime, by: str, note: str = "") -> Step:
    alert = replace(alert, state=State.RESOLVED, resolved_at=at, resolved_by=by)
    detail: dict[str, Any] = {"by": by}
    if note:
        detail["note"] = note
    return Step(alert, [_notify(alert, "resolved", at, **detail)])


def _notify(alert: Alert, type_: str, at: datetime, **detail: Any) -> Entry:
    alert.version += 1
    return Entry(type_, at, {"count": alert.count, "severity": alert.severity.value, **detail})
