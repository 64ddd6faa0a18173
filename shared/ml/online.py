"""Online (prequential) evaluation of a forecaster at several horizons, next to baselines.

Readings arrive in time order on a regular grid. At step ``t`` the value of ``t`` arrives: every
method learns it (``learn_one(x_t, y_t)``), then each predicts the value at ``t + h`` for every
horizon ``h`` from the features of ``t + h`` (``predict_one(x_{t+h})``). The predictions wait in
a buffer until ``t + h`` arrives and are scored then. Nothing can see the future: the only
values a method ever gets are those passed to ``learn_one``.

One model instance serves all horizons: it learns the same readings in the same order whatever
the horizon, so its state at ``t`` is the same as a per-horizon copy's would be -- provided
``predict_one`` does not change the model (River's contract).

A target is scored only when its value is known and every method had a prediction for it, so all
methods are compared on the same steps.

Examples
--------
>>> from datetime import UTC, datetime, timedelta
>>> from shared.ml.baselines import previous_day
>>> t0 = datetime(2024, 1, 1, tzinfo=UTC)
>>> steps = [Step(t0 + timedelta(hours=i), float(i % 24), {}) for i in range(24 * 4)]
>>> res = evaluate_online(steps=steps, horizons=[1], model_factory=previous_day,
...                       baselines={"previous_day": previous_day})
>>> res[1].n, res[1].actual == res[1].predictions["model"]
(72, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from river.time_series.base import Forecaster

from shared.ml.metrics import Errors, errors

Features = dict[str, Any]
MODEL = "model"


class Predictor(Protocol):
    def predict_one(self, x: Features) -> float | None: ...
    def learn_one(self, x: Features, y: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Step:
    """One grid step: its (aware) time, its value if one was measured, features known for it."""

    ts: datetime
    value: float | None
    features: Features = field(default_factory=dict)

    def x(self) -> Features:
        return {"ts": self.ts, **self.features}


@dataclass
class HorizonResult:
    horizon: int
    targets: list[datetime] = field(default_factory=list)
    actual: list[float] = field(default_factory=list)
    predictions: dict[str, list[float]] = field(default_factory=dict)
    # Targets with a value that some method could not predict (e.g. no value a week earlier).
    unscored: int = 0

    @property
    def n(self) -> int:
        return len(self.actual)

    def errors(self) -> dict[str, Errors]:
        return {name: errors(self.actual, preds) for name, preds in self.predictions.items()}


def evaluate_online(
    *,
    steps: Sequence[Step],
    horizons: Sequence[int],
    model_factory: Callable[[], Predictor],
    baselines: Mapping[str, Callable[[], Predictor]],
    on_step: Callable[[int], None] | None = None,
    score_from: datetime | None = None,
) -> dict[int, HorizonResult]:
    """Stream ``steps`` through a fresh model and baselines; predictions per horizon (in steps).

    Every step is learnt; only targets at or after ``score_from`` are scored (warm up on one
    period, judge another).
    """
    if any(h < 1 for h in horizons):
        raise ValueError("horizons are whole steps >= 1")
    methods: dict[str, Predictor] = {MODEL: model_factory()}
    methods.update({name: make() for name, make in baselines.items()})
    results = {h: HorizonResult(h, predictions={m: [] for m in methods}) for h in horizons}
    # target step index -> horizon -> method -> prediction (None: the method had nothing)
    pending: dict[int, dict[int, dict[str, float | None]]] = {}

    for i, step in enumerate(steps):
        waiting = pending.pop(i, {})
        if step.value is not None:
            y = float(step.value)
            if score_from is None or step.ts >= score_from:
                for h, preds in waiting.items():
                    _record(results[h], step.ts, y, preds)
            x = step.x()
            for method in methods.values():
                learn(method, x, y)
        for h in horizons:
            j = i + h
            if j >= len(steps):
                continue
            x_target = steps[j].x()
            pending.setdefault(j, {})[h] = {
                name: _checked(name, m.predict_one(x_target)) for name, m in methods.items()
            }
        if on_step is not None:
            on_step(i)
    return results


def learn(method: Any, x: Features, y: float) -> None:
    """River forecasters learn ``(y, x)``; the baselines, regressor-style, ``(x, y)``."""
    if isinstance(method, Forecaster):
        method.learn_one(y, x)
    else:
        method.learn_one(x, y)


def _checked(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} predicted {v}")
    return v


def _record(
    result: HorizonResult, ts: datetime, y: float, preds: Mapping[str, float | None]
) -> None:
    if any(p is None for p in preds.values()):
        result.unscored += 1
        return
    result.targets.append(ts)
    result.actual.append(y)
    for name, p in preds.items():
        assert p is not None  # checked just above; for mypy
        result.predictions[name].append(p)


def ratio(a: float, b: float) -> float | None:
    """``a / b`` for reports; ``None`` when ``b`` is 0."""
    return None if b == 0 else round(a / b, 4)
