"""The contract of the week-shaped models (as `river.checks` would have it): pickling gives
identical predictions, unseen slots are answered, the same inputs give the same outputs, and
inputs are never mutated."""

from __future__ import annotations

import copy
import math
import pickle
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.ml.weekly import ResidualAR, WeeklyProfile, make_weekly_forecaster

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, tzinfo=UTC)
MODELS: dict[str, Callable[[], Any]] = {
    "weekly-profile": lambda: WeeklyProfile(slot_minutes=15),
    "residual-ar": ResidualAR,
    "weekly-forecaster": make_weekly_forecaster,
}


def _stream(n: int, seed: int = 1) -> list[tuple[dict[str, Any], float]]:
    rng = random.Random(seed)
    return [
        (
            {"ts": T0 + timedelta(minutes=15 * i)},
            50 + 30 * math.sin(i / 96 * 2 * math.pi) + rng.gauss(0, 3),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("name", MODELS)
def test_pickling_round_trip_predicts_the_same(name: str) -> None:
    model = MODELS[name]()
    for x, y in _stream(800):
        model.learn_one(x, y)
    clone = pickle.loads(pickle.dumps(model))
    for x, _ in _stream(50, seed=2):
        later = {"ts": x["ts"] + timedelta(days=9)}
        assert clone.predict_one(later) == model.predict_one(later)


@pytest.mark.parametrize("name", MODELS)
def test_a_fresh_model_answers_anything(name: str) -> None:
    value = MODELS[name]().predict_one({"ts": T0})
    assert math.isfinite(value)


@pytest.mark.parametrize("name", MODELS)
def test_same_inputs_same_outputs_and_inputs_untouched(name: str) -> None:
    stream = _stream(600)
    frozen = copy.deepcopy(stream)
    a, b = MODELS[name](), MODELS[name]()
    for x, y in stream:
        a.learn_one(x, y)
        b.learn_one(x, y)
    assert stream == frozen
    x = {"ts": T0 + timedelta(days=7, hours=3)}
    assert a.predict_one(x) == b.predict_one(x)
