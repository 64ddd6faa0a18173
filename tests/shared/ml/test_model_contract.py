"""The contract every model wrapper keeps (in the spirit of `river.checks`): pickling gives
identical predictions, unseen or missing features are handled, the same inputs give the same
outputs, and inputs are never mutated."""

from __future__ import annotations

import copy
import math
import pickle
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.energy.domain.meter import EnergyProcessor
from shared.ml.anomaly import make_detector
from shared.ml.dayahead import make_forecaster as make_service_forecaster
from shared.ml.forecast import (
    AdjustedProfile,
    EwmLevel,
    Persistence,
    SeasonalProfile,
    make_forecaster,
)
from shared.schemas import Reading

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _stream(n: int, seed: int = 1) -> list[tuple[dict[str, Any], float]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = T0 + timedelta(minutes=15 * i)
        y = 10 + 5 * math.sin(i / 96 * 2 * math.pi) + rng.gauss(0, 1)
        out.append(({"ts": ts, "value": y}, y))
    return out


# Each wrapper as (learn, predict) over (x, y): forecasters and detectors alike.
def _forecaster(make: Callable[[], Any]) -> tuple[Callable[[], Any], Callable, Callable]:
    return make, (lambda m, x, y: m.learn_one(x, y)), (lambda m, x: m.predict_one(x))


def _river_forecaster(make: Callable[[], Any]) -> tuple[Callable[[], Any], Callable, Callable]:
    return make, (lambda m, x, y: m.learn_one(y, x)), (lambda m, x: m.predict_one(x))


def _detector(domain: str) -> tuple[Callable[[], Any], Callable, Callable]:
    return (
        (lambda: make_detector(domain)),
        (lambda m, x, y: m.learn_one(x)),
        (lambda m, x: m.explain_one(x)),
    )


WRAPPERS = {
    "seasonal-profile": _forecaster(SeasonalProfile),
    "adjusted-profile": _forecaster(AdjustedProfile),
    "persistence": _forecaster(Persistence),
    "ewm-level": _forecaster(EwmLevel),
    "blend-energy": _river_forecaster(lambda: make_forecaster("energy")),
    "blend-generic": _river_forecaster(lambda: make_forecaster("generic")),
    "day-ahead-energy": _river_forecaster(lambda: make_service_forecaster("energy")),
    "detector-energy": _detector("energy"),
    "detector-generic": _detector("generic"),
}


@pytest.fixture(params=sorted(WRAPPERS), ids=sorted(WRAPPERS))
def wrapper(request: pytest.FixtureRequest) -> tuple[Callable[[], Any], Callable, Callable]:
    return WRAPPERS[request.param]


def _train(make: Callable[[], Any], learn: Callable, stream: list) -> Any:
    model = make()
    for x, y in stream:
        learn(model, x, y)
    return model


def test_pickling_round_trip_gives_identical_predictions(wrapper) -> None:
    make, learn, predict = wrapper
    stream = _stream(800)
    model = _train(make, learn, stream[:600])
    clone = pickle.loads(pickle.dumps(model))
    for x, y in stream[600:]:
        assert predict(clone, x) == predict(model, x)
        learn(model, x, y)
        learn(clone, x, y)


def test_same_inputs_give_same_outputs(wrapper) -> None:
    make, learn, predict = wrapper
    stream = _stream(500, seed=3)
    a, b = _train(make, learn, stream), _train(make, learn, stream)
    probe = {"ts": T0 + timedelta(days=30), "value": 12.0}
    assert predict(a, probe) == predict(b, probe)


def test_inputs_are_not_mutated(wrapper) -> None:
    make, learn, predict = wrapper
    model = make()
    for x, y in _stream(300):
        before = copy.deepcopy(x)
        predict(model, x)
        learn(model, x, y)
        assert x == before


def test_unseen_and_extra_features_are_handled(wrapper) -> None:
    make, learn, predict = wrapper
    fresh = make()
    # Before any learning: a number, not an exception.
    out = predict(fresh, {"ts": T0, "value": 1.0})
    assert out is not None
    model = _train(make, learn, _stream(200))
    # A feature it has never seen (a weather feed that appears later) is ignored gracefully.
    x = {"ts": T0 + timedelta(days=3), "value": 11.0, "temperature_c": 4.5}
    predict(model, x)
    learn(model, x, 11.0)
    # A time it has never seen (another day type, another slot) still gets a finite answer.
    sunday_night = {"ts": datetime(2026, 1, 11, 3, 7, tzinfo=UTC), "value": 9.0}
    result = predict(model, sunday_night)
    value = result if isinstance(result, float) else result.expected
    assert math.isfinite(value)


def test_energy_processor_state_pickles_to_identical_outputs() -> None:
    proc = EnergyProcessor()
    stream = [Reading(ts=x["ts"], metric="energy_kwh", value=y) for x, y in _stream(1200)]
    state = proc.new_state("m")
    proc.process(state, device_id="m", readings=stream[:1000])
    clone = pickle.loads(pickle.dumps(state))
    a = proc.process(state, device_id="m", readings=stream[1000:])
    b = proc.process(clone, device_id="m", readings=stream[1000:])
    assert a.rows == b.rows
    assert a.events == b.events
