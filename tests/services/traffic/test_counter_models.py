"""The counter's model is a setting: a town swaps in any River regressor or forecaster."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from services.traffic.domain.counter import FlowRow, ForecastRow, TrafficProcessor
from services.traffic.settings import TrafficSettings
from shared.ml.registry import ModelSpec
from shared.ml.timed import TimedForecaster
from shared.schemas import Reading

pytestmark = pytest.mark.unit

TREE = (
    '{"path": "river.tree.HoeffdingTreeRegressor", '
    '"params": {"grace_period": 50, "leaf_prediction": "mean"}}'
)
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def _readings(days: int) -> list[Reading]:
    out = []
    for i in range(days * 96):
        ts = T0 + timedelta(minutes=15 * i)
        rush = 7 <= ts.hour < 9 or 16 <= ts.hour < 18
        out.append(Reading(ts=ts, metric="vehicles", value=120.0 if rush else 30.0))
        out.append(Reading(ts=ts, metric="speed_kmh", value=35.0 if rush else 50.0))
    return out


def test_the_forecaster_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWNPULSE_TRAFFIC_FORECASTER", TREE)
    spec = TrafficSettings(dev_mode=True).traffic_forecaster
    assert spec.path == "river.tree.HoeffdingTreeRegressor"
    assert spec.params == {"grace_period": 50, "leaf_prediction": "mean"}


def test_a_swapped_in_river_regressor_runs_the_counter() -> None:
    proc = TrafficProcessor(forecaster=ModelSpec.model_validate_json(TREE))
    assert proc.model_version != TrafficProcessor().model_version
    state = proc.new_state("c1")
    rows = proc.process(state, device_id="c1", readings=_readings(7)).rows
    for detector in (state.flow, state.speed):
        assert isinstance(detector.forecaster, TimedForecaster)
        assert type(detector.forecaster.model["HoeffdingTreeRegressor"]).__name__ == (
            "HoeffdingTreeRegressor"
        )
    flows = [r for r in rows if isinstance(r, FlowRow)]
    forecasts = [r for r in rows if isinstance(r, ForecastRow)]
    assert len(flows) == 7 * 96
    assert len(forecasts) == 4 * (7 * 96 - 1)
    assert all(math.isfinite(r.expected) and r.lower <= r.expected <= r.upper for r in forecasts)
    # A week of calendar features is enough for a tree to tell the rush hours apart.
    monday_rush = T0 + timedelta(days=7, hours=8)
    monday_night = T0 + timedelta(days=7, hours=3)
    predict = state.flow.forecaster.predict_one
    assert predict({"ts": monday_rush}) > 2 * predict({"ts": monday_night})
