"""Unit tests for `bench.forecast`: metrics, online baselines, the online loop and the loaders."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bench.forecast.data import load_energy, load_traffic
from shared.ml.baselines import (
    LastValue,
    SeasonalPersistence,
    TimeOfWeekMean,
    previous_day,
    previous_week,
)
from shared.ml.metrics import cv_rmse, errors, mae, nrmse_range, rmse
from shared.ml.online import MODEL, Step, evaluate_online

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_by_hand() -> None:
    actual = [10.0, 20.0, 30.0, 40.0]
    predicted = [12.0, 18.0, 33.0, 40.0]
    # errors 2, -2, 3, 0: MAE 7/4; RMSE sqrt((4 + 4 + 9 + 0) / 4) = sqrt(4.25); mean 25; range 30
    assert mae(actual, predicted) == 1.75
    assert rmse(actual, predicted) == pytest.approx(math.sqrt(4.25))
    assert cv_rmse(actual, predicted) == pytest.approx(math.sqrt(4.25) / 25)
    assert nrmse_range(actual, predicted) == pytest.approx(math.sqrt(4.25) / 30)
    e = errors(actual, predicted)
    assert (e.n, e.mae, e.mean) == (4, 1.75, 25.0)
    assert e.cv_rmse == round(math.sqrt(4.25) / 25, 4)


def test_perfect_forecast_has_zero_error() -> None:
    e = errors([1.0, 2.0], [1.0, 2.0])
    assert (e.mae, e.rmse, e.cv_rmse) == (0.0, 0.0, 0.0)


def test_cv_rmse_of_a_zero_mean_series_is_infinite() -> None:
    assert cv_rmse([-1.0, 1.0], [0.0, 0.0]) == math.inf


@pytest.mark.parametrize(("actual", "predicted"), [([], []), ([1.0], [1.0, 2.0])])
def test_metrics_refuse_bad_input(actual: list[float], predicted: list[float]) -> None:
    with pytest.raises(ValueError):
        mae(actual, predicted)


# --- baselines --------------------------------------------------------------------------------


def test_previous_day_and_week_persistence() -> None:
    day, week = previous_day(), previous_week()
    for b in (day, week):
        b.learn_one({"ts": T0}, 5.0)
    assert day.predict_one({"ts": T0 + timedelta(days=1)}) == 5.0
    assert day.predict_one({"ts": T0 + timedelta(days=7)}) is None
    assert week.predict_one({"ts": T0 + timedelta(days=7)}) == 5.0
    assert week.predict_one({"ts": T0 + timedelta(days=1)}) is None


def test_persistence_forgets_only_what_no_prediction_needs() -> None:
    b = SeasonalPersistence(lag=timedelta(days=1), prune_floor=100)
    for i in range(24 * 30):
        b.learn_one({"ts": T0 + i * HOUR}, float(i))
    assert len(b.seen) < 24 * 10
    last = T0 + (24 * 30 - 1) * HOUR
    assert b.predict_one({"ts": last + HOUR}) == float(24 * 29)


def test_time_of_week_mean_uses_only_the_same_slot() -> None:
    b = TimeOfWeekMean(tz=UTC, slot_minutes=60)
    for week in range(3):
        b.learn_one({"ts": T0 + timedelta(weeks=week, hours=8)}, 100.0 * (week + 1))
        b.learn_one({"ts": T0 + timedelta(weeks=week, hours=9)}, 7.0)
    assert b.predict_one({"ts": T0 + timedelta(weeks=3, hours=8)}) == 200.0
    assert b.predict_one({"ts": T0 + timedelta(weeks=3, hours=9)}) == 7.0
    assert b.predict_one({"ts": T0 + timedelta(weeks=3, days=1, hours=8)}) is None


def test_time_of_week_mean_keeps_local_hours_across_dst() -> None:
    chicago = ZoneInfo("America/Chicago")
    b = TimeOfWeekMean(tz=chicago, slot_minutes=60)
    winter = datetime(2024, 3, 4, 8, tzinfo=chicago)  # Monday 8:00 CST
    b.learn_one({"ts": winter.astimezone(UTC)}, 50.0)
    summer = datetime(2024, 3, 11, 8, tzinfo=chicago)  # Monday 8:00 CDT, 13:00 UTC
    assert b.predict_one({"ts": summer.astimezone(UTC)}) == 50.0


def test_last_value() -> None:
    b = LastValue()
    assert b.predict_one({}) is None
    b.learn_one({}, 1.5)
    assert b.predict_one({}) == 1.5


# --- the online loop --------------------------------------------------------------------------


class Spy:
    """Records what it is asked and taught; predicts the last value it learnt."""

    def __init__(self) -> None:
        self.events: list[tuple[str, datetime, Any]] = []
        self.last = 0.0

    def predict_one(self, x: dict[str, Any]) -> float:
        self.events.append(("predict", x["ts"], x.get("temperature_c")))
        return self.last

    def learn_one(self, x: dict[str, Any], y: float) -> None:
        self.events.append(("learn", x["ts"], y))
        self.last = y


def _steps(values: list[float | None]) -> list[Step]:
    return [Step(T0 + i * HOUR, v, {"temperature_c": float(i)}) for i, v in enumerate(values)]


def test_predictions_use_target_features_and_only_past_values() -> None:
    spy = Spy()
    steps = _steps([1.0, 2.0, 3.0, 4.0, 5.0])
    res = evaluate_online(steps=steps, horizons=[2], model_factory=lambda: spy, baselines={})
    # at step i the model learns y_i, then predicts i + 2 with the temperature of i + 2
    assert spy.events[:4] == [
        ("learn", T0, 1.0),
        ("predict", T0 + 2 * HOUR, 2.0),
        ("learn", T0 + HOUR, 2.0),
        ("predict", T0 + 3 * HOUR, 3.0),
    ]
    # targets 2, 3, 4 were predicted from values 2 steps older
    assert res[2].actual == [3.0, 4.0, 5.0]
    assert res[2].predictions[MODEL] == [1.0, 2.0, 3.0]


def test_missing_values_are_neither_learnt_nor_scored() -> None:
    spy = Spy()
    steps = _steps([1.0, None, 3.0, None, 5.0])
    res = evaluate_online(steps=steps, horizons=[1], model_factory=lambda: spy, baselines={})
    learnt = [e[2] for e in spy.events if e[0] == "learn"]
    assert learnt == [1.0, 3.0, 5.0]
    assert res[1].actual == [3.0, 5.0]
    assert res[1].predictions[MODEL] == [1.0, 3.0]  # the value before the gap


def test_targets_a_baseline_cannot_predict_are_left_out_for_everyone() -> None:
    steps = _steps([float(i % 24) for i in range(24 * 3)])
    res = evaluate_online(
        steps=steps,
        horizons=[1, 24],
        model_factory=LastValue,
        baselines={"previous_day": previous_day},
    )
    # target j needs the value at j - 24, known at j - h: j >= 24 for both horizons
    assert res[1].n == 48 and res[24].n == 48
    assert res[1].unscored == 23 and res[24].unscored == 0
    assert res[1].predictions["previous_day"] == res[1].actual


def test_non_finite_predictions_are_refused() -> None:
    class Broken(Spy):
        def predict_one(self, x: dict[str, Any]) -> float:
            return math.nan

    with pytest.raises(ValueError, match="predicted nan"):
        evaluate_online(steps=_steps([1.0, 2.0]), horizons=[1], model_factory=Broken, baselines={})


# --- loaders ----------------------------------------------------------------------------------


def test_energy_loader_treats_zero_as_missing(tmp_path: Path) -> None:
    building = tmp_path / "energy/cambridge_estates/electricity/UCam_Building_b1"
    weather = tmp_path / "energy/cambridge_estates/weather_bedford"
    building.mkdir(parents=True)
    weather.mkdir(parents=True)
    (building / "2019.csv").write_text(
        "datetime,equipment load [kWh]\n"
        "2019-01-01 00:00:00,10.5\n2019-01-01 01:00:00,0.0\n2019-01-01 03:00:00,12.0\n"
    )
    (weather / "2019.csv").write_text(
        "datetime,air_temperature [degC],rltv_hum [%],glbl_irad_amt [W/m2]\n"
        "2019-01-01 00:00:00,8.2,81.6,0.0\n"
    )
    steps = load_energy(tmp_path, "UCam_Building_b1")
    assert [s.value for s in steps] == [10.5, None, None, 12.0]
    assert steps[0].ts == datetime(2019, 1, 1, tzinfo=UTC)
    assert steps[0].features == {"temperature_c": 8.2}
    assert steps[1].features == {}


def test_traffic_loader_dedupes_hours_and_follows_dst(tmp_path: Path) -> None:
    folder = tmp_path / "traffic/metro_interstate_i94"
    folder.mkdir(parents=True)
    head = "holiday,temp,rain_1h,snow_1h,clouds_all,weather_main,weather_description,date_time,"
    (folder / "Metro_Interstate_Traffic_Volume.csv").write_text(
        head + "traffic_volume\r\n"
        "None,280.0,0,0,1,Mist,mist,2017-03-12 01:00:00,500\r\n"
        "None,280.0,0,0,1,Fog,fog,2017-03-12 01:00:00,500\r\n"
        "None,0.0,0,0,1,Fog,fog,2017-03-12 03:00:00,700\r\n"
    )
    steps = load_traffic(tmp_path)
    # 01:00 CST (07:00 UTC) then 03:00 CDT (08:00 UTC): the 02:00 that DST skips is no gap
    assert [s.value for s in steps] == [500.0, 700.0]
    assert steps[1].ts.hour == 3
    assert steps[0].features == {"temperature_c": 6.85}
    assert steps[1].features == {}  # 0 K is a bad value
