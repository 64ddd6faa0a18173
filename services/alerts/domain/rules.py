"""Threshold rules on readings, and silent devices: data in, signals out.

A rule applies to a domain, optionally one device, and one metric. Several rules may share a
kind (e.g. bin fill >= 90 % warning and >= 100 % critical): together they give one signal per
reading and kind, active with the highest severity that fires.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from services.alerts.domain.lifecycle import Damping, Signal
from shared.schemas import AlertEvent, Severity

Op = Literal[">=", ">", "<=", "<", "silent"]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    domain: str
    metric: str
    op: Op
    # For "silent": how many usual reporting periods without a reading make the device silent.
    threshold: float
    severity: Severity
    kind: str
    device_id: str | None = None
    hysteresis: float = 0.0
    damping: Damping = field(default_factory=Damping)
    name: str = ""

    @property
    def direction(self) -> int:
        return -1 if self.op in ("<=", "<") else 1

    def applies_to(self, *, domain: str, device_id: str, metric: str) -> bool:
        return (
            self.domain == domain
            and self.metric == metric
            and (self.device_id is None or self.device_id == device_id)
        )


def default_kind(*, domain: str, metric: str, op: Op) -> str:
    """The kind a rule gets unless one is given.

    >>> default_kind(domain="waste", metric="fill_pct", op=">=")
    'waste.fill_pct_high'
    >>> default_kind(domain="energy", metric="readings", op="silent")
    'energy.silent'
    """
    if op == "silent":
        return f"{domain}.silent"
    return f"{domain}.{metric}_{'low' if op in ('<=', '<') else 'high'}"


def evaluate(rule: Rule, value: float) -> bool | None:
    """True: the rule fires; False: the value is back past the hysteresis band; None: in between.

    >>> r = Rule(id="r", domain="waste", metric="temperature_c", op=">=", threshold=60,
    ...          severity=Severity.CRITICAL, kind="k", hysteresis=5)
    >>> [evaluate(r, v) for v in (61, 60, 57, 55, 54.9)]
    [True, True, None, None, False]
    """
    t, h = rule.threshold, rule.hysteresis
    match rule.op:
        case ">=":
            return True if value >= t else (False if value < t - h else None)
        case ">":
            return True if value > t else (False if value <= t - h else None)
        case "<=":
            return True if value <= t else (False if value > t + h else None)
        case "<":
            return True if value < t else (False if value >= t + h else None)
    return None


def reading_signals(
    rules: Iterable[Rule],
    *,
    domain: str,
    device_id: str,
    metric: str,
    value: float,
    at: datetime,
) -> list[Signal]:
    """The signals one reading gives: one per kind of the threshold rules that apply to it."""
    by_kind: dict[str, list[tuple[Rule, bool | None]]] = {}
    for rule in rules:
        if rule.op != "silent" and rule.applies_to(
            domain=domain, device_id=device_id, metric=metric
        ):
            by_kind.setdefault(rule.kind, []).append((rule, evaluate(rule, value)))
    signals = []
    for kind, results in by_kind.items():
        firing = [r for r, fired in results if fired]
        if firing:
            worst = max(firing, key=lambda r: r.severity.rank)
            signals.append(_signal(worst, kind, device_id, value, at, active=True))
        elif all(fired is False for _, fired in results):
            signals.append(_signal(results[0][0], kind, device_id, value, at, active=False))
    return signals


def silence_factor_exceeded(*, gap_s: float, usual_period_s: float | None, factor: float) -> bool:
    """Whether a device that last reported `gap_s` ago counts as silent.

    >>> silence_factor_exceeded(gap_s=3700, usual_period_s=900, factor=4)
    True
    >>> silence_factor_exceeded(gap_s=3500, usual_period_s=900, factor=4)
    False
    >>> silence_factor_exceeded(gap_s=10**6, usual_period_s=None, factor=4)
    False
    """
    return usual_period_s is not None and usual_period_s > 0 and gap_s > factor * usual_period_s


def update_period(previous: float | None, gap_s: float, *, alpha: float = 0.2) -> float:
    """Exponentially weighted mean of the gaps between a device's messages.

    >>> update_period(None, 900.0)
    900.0
    >>> round(update_period(900.0, 1800.0), 1)
    1080.0
    """
    return gap_s if previous is None else (1 - alpha) * previous + alpha * gap_s


def silence_signal(
    rule: Rule, *, device_id: str, silent: bool, at: datetime, gap_s: float, period_s: float | None
) -> Signal:
    return Signal(
        device_id=device_id,
        domain=rule.domain,
        kind=rule.kind,
        active=silent,
        at=at,
        severity=rule.severity,
        value=gap_s,
        explanation={
            "rule_id": rule.id,
            "rule": rule.name,
            "expected": f"a message every {period_s or 0:.0f} s or so",
            "observed": f"no message for {gap_s:.0f} s",
            "message": f"{device_id} silent for more than {rule.threshold:g} usual periods",
        },
        rule_id=rule.id,
    )


def _signal(
    rule: Rule, kind: str, device_id: str, value: float, at: datetime, *, active: bool
) -> Signal:
    verb = "" if active else "no longer "
    return Signal(
        device_id=device_id,
        domain=rule.domain,
        kind=kind,
        active=active,
        at=at,
        severity=rule.severity,
        value=value,
        direction=rule.direction,
        explanation={
            "rule_id": rule.id,
            "rule": rule.name,
            "metric": rule.metric,
            "expected": f"{rule.metric} not {rule.op} {rule.threshold:g}",
            "observed": value,
            "message": f"{rule.metric} = {value:g}, {verb}{rule.op} {rule.threshold:g}",
        },
        rule_id=rule.id,
    )


def episode_signal(event: AlertEvent) -> Signal:
    """An episode start or end from a domain service."""
    observed = event.explanation.get("observed")
    return Signal(
        device_id=event.device_id,
        domain=str(event.domain),
        kind=event.kind,
        active=event.phase == "start",
        at=event.ts,
        severity=event.severity,
        value=float(observed) if isinstance(observed, int | float) else None,
        explanation={**event.explanation, "episode_start": event.episode_start.isoformat()},
    )
