"""The day-ahead energy forecaster: what it does with the outdoor temperature, and without it."""

from __future__ import annotations

import math
import pickle
import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.ml.calendar import TownCalendar
from shared.ml.dayahead import DayAheadForecaster, TemperatureResponse, make_forecaster
from shared.ml.forecast import CalendarForecaster

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
LONDON = TownCalendar("Europe/London", "GB")


def _weather(days: int, *, seed: int = 4) -> list[float]:
    """Hourly outdoor temperature: a daily cycle on a level that wanders from day to day (a
    warm spell persists for days, so yesterday's temperature says something about today's)."""
    rng = random.Random(seed)
    level, out = 8.0, []
    for _ in range(days):
        level = 8.0 + 0.8 * (level - 8.0) + rng.gauss(0, 3)
        out += [level + 3 * math.sin(2 * math.pi * (h - 9) / 24) for h in range(24)]
    return out


Row = tuple[datetime, float, float]


def _building(days: int, *, sensitivity: float, seed: int = 4) -> list[Row]:
    """(time, kWh, temperature): an office's week, heated electrically below 15 degrees."""
    rng = random.Random(seed + 1)
    temps = _weather(days, seed=seed)
    out = []
    for i, temp in enumerate(temps):
        ts = T0 + i * HOUR
        busy = ts.weekday() < 5 and 8 <= ts.hour < 18
        kwh = (30.0 if busy else 10.0) + sensitivity * max(0.0, 15.0 - temp) + rng.gauss(0, 1)
        out.append((ts, kwh, temp))
    return out


def _day_ahead_mae(rows: list[Row], *, mode: str) -> float:
    """Online: learn each hour, forecast the hour 24 h later; scored after four weeks.
    mode: 'none' (never told a temperature), 'honest' (told the observed one when learning),
    'oracle' (also told the target hour's when forecasting)."""
    model = DayAheadForecaster(slot_minutes=60, timezone="UTC", country="none")
    pending: dict[datetime, float] = {}
    errors = []
    for i, (ts, kwh, temp) in enumerate(rows):
        if ts in pending and i >= 28 * 24:
            errors.append(abs(kwh - pending.pop(ts)))
        model.learn_one(kwh, {"ts": ts} if mode == "none" else {"ts": ts, "temperature_c": temp})
        if i + 24 < len(rows):
            target, _, target_temp = rows[i + 24]
            x = {"ts": target, "temperature_c": target_temp} if mode == "oracle" else {"ts": target}
            pending[target] = model.predict_one(x)
    return sum(errors) / len(errors)


def test_the_temperature_improves_a_temperature_driven_load_and_the_oracle_most() -> None:
    rows = _building(120, sensitivity=2.0)
    none, honest, oracle = (_day_ahead_mae(rows, mode=m) for m in ("none", "honest", "oracle"))
    assert oracle < honest < none


def test_without_a_temperature_the_temperature_part_says_nothing() -> None:
    """A constant temperature carries no information: the forecasts are exactly those of a
    model never told one."""
    told, untold = (DayAheadForecaster(slot_minutes=60) for _ in range(2))
    for ts, kwh, _ in _building(30, sensitivity=2.0):
        told.learn_one(kwh, {"ts": ts, "temperature_c": 7.0})
        untold.learn_one(kwh, {"ts": ts})
        target = {"ts": ts + 24 * HOUR}
        assert told.predict_one(target) == untold.predict_one(target)
    assert told.temperature.slope == 0.0
    assert not untold.temperature.known


def test_forecasts_use_only_temperatures_observed_before_them() -> None:
    response = TemperatureResponse()
    for h in range(72):
        response.learn_one({"ts": T0 + h * HOUR, "temperature_c": float(h)}, residual=0.0)
    last = T0 + 71 * HOUR
    # Up to a day ahead: the same hour the day before; further: the latest day observed.
    assert response.temperature({"ts": last + 5 * HOUR}) == 71 + 5 - 24
    assert response.temperature({"ts": last + 30 * HOUR}) == 71 + 30 - 48
    # A forecast given for the target time wins.
    assert response.temperature({"ts": last + 5 * HOUR, "temperature_c": -3.0}) == -3.0
    # Two days are kept, no more.
    assert sorted(response.recent.values()) == [float(h) for h in range(71 - 47, 72)]


def test_the_hour_ahead_leans_on_the_last_reading() -> None:
    model = DayAheadForecaster(slot_minutes=60)
    rows = _building(28, sensitivity=0.0)
    for ts, kwh, temp in rows:
        model.learn_one(kwh, {"ts": ts, "temperature_c": temp})
    last = rows[-1][0]
    before = model.predict_one({"ts": last + HOUR})
    model.learn_one(rows[-1][1] + 50.0, {"ts": last + HOUR, "temperature_c": rows[-1][2]})
    soon = model.predict_one({"ts": last + 2 * HOUR}) - before
    day = model.predict_one({"ts": last + 25 * HOUR}) - model.predict_one({"ts": last + 2 * HOUR})
    assert soon > abs(day)


def test_pickled_models_forecast_the_same() -> None:
    model = DayAheadForecaster(slot_minutes=60)
    rows = _building(20, sensitivity=2.0)
    for ts, kwh, temp in rows[:-24]:
        model.learn_one(kwh, {"ts": ts, "temperature_c": temp})
    clone = pickle.loads(pickle.dumps(model))
    for ts, kwh, temp in rows[-24:]:
        x = {"ts": ts + 24 * HOUR}
        assert clone.predict_one(x) == model.predict_one(x)
        for m in (model, clone):
            m.learn_one(kwh, {"ts": ts, "temperature_c": temp})


def test_energy_forecasts_come_from_it_and_the_detector_keeps_the_calendar_blend() -> None:
    assert isinstance(make_forecaster("energy", calendar=LONDON), DayAheadForecaster)
    detector = make_forecaster("energy", calendar=LONDON, correct=False)
    assert isinstance(detector, CalendarForecaster)
    assert isinstance(make_forecaster("generic"), CalendarForecaster)
