"""The alert state machine: open, repeat, acknowledge, resolve; minimum duration and cool-down."""

from __future__ import annotations

import copy
import doctest
import importlib
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts.domain import lifecycle
from services.alerts.domain.lifecycle import Alert, Damping, Signal, State, Step
from shared.schemas import Severity

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DEFAULT = Damping(min_duration_s=0, cooldown_s=60)


def sig(active: bool, s: float, *, severity: Severity = Severity.WARNING, value: float = 1.0):
    return Signal(
        device_id="bin-1",
        domain="waste",
        kind="waste.fill_pct_high",
        active=active,
        at=T0 + timedelta(seconds=s),
        severity=severity,
        value=value,
        explanation={"message": f"value {value}"},
    )


class Tracker:
    """Feeds signals like the service layer does, keeping every alert it saw."""

    def __init__(self, damping: Damping = DEFAULT) -> None:
        self.damping = damping
        self.current: Alert | None = None
        self.alerts: dict[str, Alert] = {}
        self.notified: list[tuple[str, str]] = []
        self.n = 0

    def _take(self, steps: list[Step]) -> None:
        for step in steps:
            if step.discard:
                self.alerts.pop(step.alert.id, None)
                self.current = None
                continue
            self.alerts[step.alert.id] = step.alert
            self.current = step.alert if step.alert.current else None
            self.notified += [(step.alert.id, e.type) for e in step.entries if e.notified]

    def feed(self, signal: Signal) -> None:
        self.n += 1
        self._take(
            lifecycle.observe(self.current, signal, damping=self.damping, new_id=f"a{self.n}")
        )

    def tick(self, s: float) -> None:
        if self.current is not None:
            step = lifecycle.tick(self.current, T0 + timedelta(seconds=s))
            self._take([step] if step else [])

    def visible(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.state is not State.PENDING]


def test_open_repeat_and_resolve_after_cooldown() -> None:
    t = Tracker()
    t.feed(sig(True, 0, value=91))
    assert t.current and t.current.state is State.OPEN and t.current.opened_at == T0
    t.feed(sig(True, 10, value=97))  # same activation: no notification, peak and last seen move
    assert t.current.count == 1 and t.current.peak_value == 97
    assert t.current.last_seen == T0 + timedelta(seconds=10)
    t.feed(sig(False, 20))
    assert t.current.state is State.OPEN and not t.current.active
    t.tick(79)  # 59 s clear: still within the cool-down
    assert t.current is not None
    t.tick(80)
    [alert] = t.visible()
    assert alert.state is State.RESOLVED and alert.resolved_by == "signal"
    assert alert.resolved_at == T0 + timedelta(seconds=80)
    assert [e for _, e in t.notified] == ["opened", "resolved"]
    assert alert.version == 2


def test_flapping_signal_gives_one_alert_with_a_count() -> None:
    t = Tracker()
    for i in range(50):
        t.feed(sig(True, 20 * i))
        t.feed(sig(False, 20 * i + 10))
    t.tick(20 * 49 + 10 + 60)
    [alert] = t.visible()
    assert alert.count == 50
    assert alert.state is State.RESOLVED
    types = [e for _, e in t.notified]
    assert types[0] == "opened" and types[-1] == "resolved"
    assert types.count("opened") == 1 and types.count("updated") == 49


def test_new_alert_only_after_the_cooldown() -> None:
    t = Tracker()
    t.feed(sig(True, 0))
    t.feed(sig(False, 10))
    t.feed(sig(True, 75))  # clear for 65 s > 60 s: the first one resolved, a new one opens
    alerts = t.visible()
    assert [a.state for a in alerts] == [State.RESOLVED, State.OPEN]
    assert alerts[0].resolved_at == T0 + timedelta(seconds=70)


def test_minimum_duration_suppresses_short_blips() -> None:
    t = Tracker(Damping(min_duration_s=30, cooldown_s=0))
    for i in range(10):
        t.feed(sig(True, 100 * i))
        t.feed(sig(False, 100 * i + 20))  # 20 s < 30 s: never opens
    assert t.visible() == [] and t.notified == []
    t.feed(sig(True, 5000))
    t.tick(5029)
    assert t.current and t.current.state is State.PENDING
    t.tick(5030)
    assert t.current.state is State.OPEN and t.current.opened_at == T0 + timedelta(seconds=5030)
    t.feed(sig(False, 5040))  # zero cool-down: resolved at once
    assert t.current is None and [e for _, e in t.notified] == ["opened", "resolved"]


def test_escalation_updates_severity_and_notifies() -> None:
    t = Tracker()
    t.feed(sig(True, 0, severity=Severity.WARNING))
    t.feed(sig(True, 5, severity=Severity.CRITICAL))
    t.feed(sig(True, 6, severity=Severity.INFO))  # never de-escalates
    assert t.current and t.current.severity is Severity.CRITICAL
    assert [e for _, e in t.notified] == ["opened", "updated"]


def test_acknowledge_then_repeat_stays_acknowledged_then_resolve() -> None:
    t = Tracker()
    t.feed(sig(True, 0))
    assert t.current
    step = lifecycle.acknowledge(t.current, at=T0, by="key:x", note="on my way")
    assert step and step.alert.state is State.ACKNOWLEDGED
    assert lifecycle.acknowledge(step.alert, at=T0, by="key:x") is None  # idempotent
    t._take([step])
    t.feed(sig(False, 10))
    t.feed(sig(True, 20))
    assert t.current.state is State.ACKNOWLEDGED and t.current.count == 2
    done = lifecycle.resolve(t.current, at=T0 + timedelta(seconds=30), by="key:x")
    assert done and done.alert.state is State.RESOLVED and done.alert.resolved_by == "key:x"
    assert lifecycle.resolve(done.alert, at=T0, by="key:x") is None
    with pytest.raises(lifecycle.InvalidTransition):
        lifecycle.acknowledge(done.alert, at=T0, by="key:x")


def test_out_of_order_signals_are_ignored_and_inputs_not_mutated() -> None:
    t = Tracker()
    t.feed(sig(True, 100))
    assert t.current
    before = copy.deepcopy(t.current)
    assert lifecycle.observe(t.current, sig(False, 50), damping=t.damping, new_id="x") == []
    steps = lifecycle.observe(t.current, sig(False, 150), damping=t.damping, new_id="x")
    assert steps and t.current == before


def test_clear_without_alert_does_nothing() -> None:
    assert lifecycle.observe(None, sig(False, 0), damping=Damping(), new_id="x") == []


@pytest.mark.parametrize(
    "module", ["lifecycle", "rules", "webhooks"], ids=lambda m: f"services.alerts.domain.{m}"
)
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"services.alerts.domain.{module}")
    result = doctest.testmod(mod)
    assert result.failed == 0
