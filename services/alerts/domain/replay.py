"""The alerts a stream of episode events gives an operator, without Kafka or a database.

The alerts service turns each consumed episode event into a signal (`rules.episode_signal`) and
applies it with `lifecycle.apply`, the damping being its `event_*` settings. This does the same
with a whole series of events, in order, so an evaluation or a benchmark counts the alerts an
operator would have received: one per episode, a repeat within the cool-down counted on the
alert already open, not as a new one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.alerts.domain import lifecycle, rules
from services.alerts.domain.lifecycle import Alert, Damping
from shared.schemas import AlertEvent


@dataclass(frozen=True, slots=True)
class Opened:
    """An alert as it opened: what a technician is called for."""

    device_id: str
    kind: str
    opened_at: datetime
    severity: str


def alerts_of(
    events: Iterable[AlertEvent], *, damping: Damping | None = None
) -> tuple[list[Opened], list[Alert]]:
    """The alerts `events` open, in order, and every alert as it stands after the last event.

    `damping` is the service's damping of episode events (its defaults: `Damping()`, those of
    `AlertsSettings.event_min_duration_s` and `event_cooldown_s`). Events are applied in their
    order, as the service consumes a device's events (one Kafka key per device); an event id
    seen before is a duplicate, as the service's `claim_events` makes it.
    """
    damping = Damping() if damping is None else damping
    counter = itertools.count(1)
    current: dict[tuple[str, str], Alert | None] = {}
    seen: set[str] = set()
    opened: list[Opened] = []
    final: dict[str, Alert] = {}
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        signal = rules.episode_signal(event)
        steps = lifecycle.apply(
            current, [(signal, damping)], new_id=lambda: f"replay-{next(counter)}"
        )
        for step in steps:
            if step.discard:
                final.pop(step.alert.id, None)
                continue
            final[step.alert.id] = step.alert
            opened += [
                Opened(step.alert.device_id, step.alert.kind, e.at, step.alert.severity.value)
                for e in step.entries
                if e.type == "opened"
            ]
    return opened, list(final.values())
