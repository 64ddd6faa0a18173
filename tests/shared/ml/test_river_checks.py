"""River's own estimator checks (`river.checks`) on every model the services run.

River's checks feed anomaly detectors its `CreditCard` data set, which it downloads from the
internet; the test machines have none. For anomaly detectors the data-set checks therefore run
on a local labelled stream instead (a daily cycle with injected spikes): the same checks,
another data set. Every other check is River's, unchanged.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from river import anomaly, base, checks, linear_model, time_series

from shared.ml.anomaly import ResidualDetector, make_detector
from shared.ml.artime import ARTimeDetector
from shared.ml.calendar import TownCalendar
from shared.ml.context import ContextDetector
from shared.ml.dayahead import DayAheadForecaster
from shared.ml.forecast import CalendarForecaster, make_forecaster
from shared.ml.levels import LevelWatch
from shared.ml.timed import CalendarFeatures, TimedForecaster, with_calendar

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def spiky_stream(n: int, *, seed: int = 7) -> list[tuple[dict[str, Any], bool]]:
    """A 15-minute daily cycle with noise; about 2% of readings are spikes, labelled True."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        value = 50 + 20 * math.sin(2 * math.pi * i / 96) + rng.gauss(0, 2)
        spike = i > 200 and rng.random() < 0.02
        if spike:
            value += rng.choice((-1, 1)) * rng.uniform(60, 120)
        out.append(({"ts": T0 + timedelta(minutes=15 * i), "value": value}, spike))
    return out


def _local_datasets(original: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def datasets(model: base.Estimator, scale: int = 1) -> Iterator[Any]:
        if isinstance(model, base.AnomalyDetector):
            yield spiky_stream(1000 * scale)
        else:
            yield from original(model, scale)

    return datasets


MODELS: dict[str, Callable[[], base.Estimator]] = {
    "artime-detector": ARTimeDetector,
    "context-detector": ContextDetector,
    "level-watch": LevelWatch,
    "residual-detector": ResidualDetector,
    "residual-detector-energy": lambda: make_detector("energy", slot_minutes=15),
    "residual-detector-generic": lambda: make_detector("generic"),
    "residual-detector-hst-scorer": lambda: ResidualDetector(scorer=anomaly.HalfSpaceTrees(seed=1)),
    "calendar-forecaster": CalendarForecaster,
    "calendar-forecaster-energy": lambda: make_forecaster(
        "energy", calendar=TownCalendar("Europe/London", "GB")
    ),
    "calendar-forecaster-traffic": lambda: make_forecaster("traffic"),
    # The energy service's forecasts (shared.ml.dayahead.make_forecaster("energy")).
    "day-ahead-forecaster": DayAheadForecaster,
    "calendar-forecaster-weekly": lambda: make_forecaster("weekly"),
    # What a town's setting may swap in (shared.ml.timed).
    "calendar-features": CalendarFeatures,
    "calendar-features-regressor": lambda: with_calendar(
        linear_model.LinearRegression(), TownCalendar("Europe/London", "GB")
    ),
    "timed-forecaster": TimedForecaster,
    "timed-forecaster-snarimax": lambda: TimedForecaster(time_series.SNARIMAX(p=2, d=0, q=1)),
    "timed-forecaster-regressor": lambda: TimedForecaster(
        with_calendar(linear_model.LinearRegression(), TownCalendar())
    ),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_river_estimator_checks(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "_yield_datasets", _local_datasets(checks._yield_datasets))
    model = MODELS[name]()
    ran = 0
    for check in checks.yield_checks(model):
        check(model.clone())
        ran += 1
    assert ran >= 15  # River's common checks at least: nothing was silently skipped


@pytest.mark.parametrize("name", ["context-detector", "residual-detector-energy"])
def test_detectors_rank_spikes_above_normal_readings(name: str) -> None:
    """Stronger than River's AUC >= 0.5: the spikes of the local stream are found."""
    from sklearn.metrics import roc_auc_score

    det = MODELS[name]()
    assert isinstance(det, base.AnomalyDetector)
    scores, labels = [], []
    for x, spike in spiky_stream(3000):
        scores.append(det.score_one(x))
        det.learn_one(x)
        labels.append(spike)
    assert roc_auc_score(labels[300:], scores[300:]) > 0.8
