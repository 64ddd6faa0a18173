"""The forecasters share `PeriodicForecaster` (issue #25: `forecast`, `_ts` and `_step` were written
twice): checkpoints pickled before it, by main at 0615242, still load and forecast the same.

`data/forecasters_0615242.pickle` holds a dict of five forecasters, each taught `_series()` with
main's code at 0615242 (`pickle.HIGHEST_PROTOCOL`, as `shared.runtime.states` pickles them), and
`data/forecasters_0615242.json` their forecasts then, from that same code.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.ml.dayahead import DayAheadForecaster
from shared.ml.forecast import CalendarForecaster
from shared.ml.periodic import PeriodicForecaster

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
T0 = datetime(2026, 1, 5, tzinfo=UTC)
HOURS = 24 * 10
END = T0 + timedelta(hours=HOURS)
XS = [{"ts": END + timedelta(hours=h)} for h in range(0, 30, 3)]


def _models() -> dict[str, Any]:
    """The models the fixture holds, untaught (the same constructors as at 0615242)."""
    return {
        "energy": CalendarForecaster(domain="energy", slot_minutes=60, correct=False),
        "energy_corrected": CalendarForecaster(domain="energy", slot_minutes=60),
        "traffic": CalendarForecaster(domain="traffic", slot_minutes=60),
        "generic": CalendarForecaster(domain="generic", slot_minutes=60),
        "dayahead": DayAheadForecaster(slot_minutes=60),
    }


def _series() -> Iterator[tuple[float, dict[str, Any]]]:
    for h in range(HOURS):
        ts = T0 + timedelta(hours=h)
        y = round(6 + 4 * math.sin(2 * math.pi * h / 24) + (h % 7) / 10, 3)
        yield y, {"ts": ts, "temperature_c": round(5 + 3 * math.cos(2 * math.pi * h / 24), 2)}


def _taught() -> dict[str, Any]:
    models = _models()
    for y, x in _series():
        for name, model in models.items():
            model.learn_one(y, x if name == "dayahead" else {"ts": x["ts"]})
    return models


def _forecasts(model: Any) -> dict[str, Any]:
    return {
        "xs": model.forecast(horizon=len(XS), xs=XS),
        "periods": model.forecast(horizon=6),
        "spread": model.spread_one({"ts": END}),
    }


@pytest.fixture(scope="module")
def old() -> dict[str, Any]:
    loaded: dict[str, Any] = pickle.loads((DATA / "forecasters_0615242.pickle").read_bytes())
    return loaded


def test_the_forecasters_share_one_clock() -> None:
    for model in _models().values():
        assert isinstance(model, PeriodicForecaster)
    # Held once: neither class defines the shared methods again.
    for cls in (CalendarForecaster, DayAheadForecaster):
        assert not {"forecast", "_ts", "_step"} & set(vars(cls))


def test_an_old_checkpoint_loads_as_the_same_classes(old: dict[str, Any]) -> None:
    assert {name: type(m) for name, m in old.items()} == {
        name: type(m) for name, m in _models().items()
    }
    for model in old.values():
        assert model.last_ts == END - timedelta(hours=1)
        assert model.period == timedelta(hours=1)


def test_an_old_checkpoint_forecasts_what_it_did_then(old: dict[str, Any]) -> None:
    then = json.loads((DATA / "forecasters_0615242.json").read_text(encoding="utf-8"))
    assert set(then) == set(old)
    for name, model in old.items():
        assert _forecasts(model) == then[name], name


def test_an_old_checkpoint_forecasts_as_a_model_taught_today(old: dict[str, Any]) -> None:
    today = _taught()
    for name, model in old.items():
        assert _forecasts(model) == _forecasts(today[name]), name


def test_an_old_checkpoint_learns_on_as_a_model_taught_today(old: dict[str, Any]) -> None:
    restored = pickle.loads(pickle.dumps(old, protocol=pickle.HIGHEST_PROTOCOL))
    today = _taught()
    later = END + timedelta(hours=2)  # a gap: the period stays the shortest one seen
    for name in today:
        for models in (restored, today):
            models[name].learn_one(7.5, {"ts": later, "temperature_c": 4.0})
        assert restored[name].period == timedelta(hours=1)
        assert _forecasts(restored[name]) == _forecasts(today[name]), name


def test_a_reading_without_a_time_follows_the_last_by_the_period() -> None:
    model = _taught()["traffic"]
    model.learn_one(5.0)
    assert model.last_ts == END
    model.learn_one(5.0, {"ts": END + timedelta(minutes=30)})
    assert model.period == timedelta(minutes=30)
    assert model._ts(None) == END + timedelta(hours=1)
