"""Episode events -> the alerts an operator gets, without Kafka or a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.alerts.domain.lifecycle import Damping, State
from services.alerts.domain.replay import alerts_of
from shared.schemas import AlertEvent, Severity
from shared.topics import Domain

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, 2, tzinfo=UTC)
H = timedelta(hours=1)


def _event(
    start: datetime, phase: str, at: datetime, kind: str = "energy.consumption_low"
) -> AlertEvent:
    return AlertEvent(
        event_id=AlertEvent.make_id(device_id="m1", kind=kind, episode_start=start, phase=phase),
        device_id="m1",
        domain=Domain.ENERGY,
        kind=kind,
        phase=phase,  # type: ignore[arg-type]
        severity=Severity.WARNING,
        episode_start=start,
        ts=at,
        explanation={"observed": 1.0},
    )


def test_one_alert_per_episode_opened_at_the_event_time() -> None:
    events = [
        _event(T0, "start", T0 + 2 * H),
        _event(T0, "end", T0 + 8 * H),
        _event(T0 + 20 * H, "start", T0 + 22 * H),
    ]
    opened, alerts = alerts_of(events)
    assert [(o.kind, o.opened_at) for o in opened] == [
        ("energy.consumption_low", T0 + 2 * H),
        ("energy.consumption_low", T0 + 22 * H),
    ]
    assert sorted(a.state for a in alerts) == [State.OPEN, State.RESOLVED]


def test_a_duplicate_event_counts_once() -> None:
    start = _event(T0, "start", T0 + 2 * H)
    opened, alerts = alerts_of([start, start])
    assert len(opened) == 1 and alerts[0].count == 1


def test_an_episode_back_within_the_cool_down_is_the_same_alert() -> None:
    events = [
        _event(T0, "start", T0 + 2 * H),
        _event(T0, "end", T0 + 3 * H),
        _event(T0 + 3 * H, "start", T0 + 3 * H + timedelta(minutes=30)),
    ]
    opened, alerts = alerts_of(events, damping=Damping(cooldown_s=3600))
    assert len(opened) == 1 and len(alerts) == 1 and alerts[0].count == 2
    # With the service's default cool-down (60 s) the second episode is an alert of its own.
    assert len(alerts_of(events)[0]) == 2
