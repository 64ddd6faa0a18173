"""The meter's models: a town swaps in any River forecaster by setting, and the 24 h forecasts
the service stores are the benchmarked forecaster's output (BENCHMARKS.md, "Forecast quality:
building energy")."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta

import pytest

from bench.forecast.run import DATA_CALENDARS, DEFAULT_FORECASTER, load_forecaster_factory
from services.energy.domain.meter import EnergyProcessor, ForecastRow, ScoreRow, refresh_offset
from services.energy.settings import EnergySettings
from shared.ml.dayahead import DayAheadForecaster, make_forecaster
from shared.ml.online import learn
from shared.ml.registry import ModelSpec
from shared.ml.timed import TimedForecaster
from shared.schemas import Reading

pytestmark = pytest.mark.unit

SNARIMAX = '{"path": "river.time_series.SNARIMAX", "params": {"p": 2, "d": 0, "q": 1}}'
T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def _value(ts: datetime) -> float:
    return 5.0 + 4.0 * math.sin(2 * math.pi * (ts.hour + ts.minute / 60) / 24)


def _readings(n: int, *, step: timedelta) -> list[Reading]:
    return [
        Reading(ts=T0 + i * step, metric="energy_kwh", value=round(_value(T0 + i * step), 3))
        for i in range(n)
    ]


def test_the_forecaster_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWNPULSE_ENERGY_FORECASTER", SNARIMAX)
    spec = EnergySettings(dev_mode=True).energy_forecaster
    assert spec == ModelSpec(path="river.time_series.SNARIMAX", params={"p": 2, "d": 0, "q": 1})
    assert EnergySettings(dev_mode=True, _env_file=None).energy_forecaster == spec
    monkeypatch.delenv("TOWNPULSE_ENERGY_FORECASTER")
    assert EnergySettings(dev_mode=True).energy_forecaster.path.endswith("make_forecaster")


def test_a_swapped_in_river_forecaster_runs_the_meter() -> None:
    spec = ModelSpec.model_validate_json(SNARIMAX)
    proc, default = EnergyProcessor(forecaster=spec), EnergyProcessor()
    readings = _readings(3 * 96, step=timedelta(minutes=15))
    state, default_state = proc.new_state("m1"), default.new_state("m1")
    rows = proc.process(state, device_id="m1", readings=readings).rows
    default_rows = default.process(default_state, device_id="m1", readings=readings).rows

    # Both the detector's expected value and the stored forecasts come from SNARIMAX.
    for model in (state.forecaster, state.detector.forecaster):
        assert isinstance(model, TimedForecaster)
        assert type(model.model).__name__ == "SNARIMAX"
    scores = [r for r in rows if isinstance(r, ScoreRow)]
    forecasts = [r for r in rows if isinstance(r, ForecastRow)]
    assert len(scores) == len(readings)
    assert all(math.isfinite(r.expected) and 0.0 <= r.score <= 1.0 for r in scores)
    assert len(forecasts) == 24 * 3 * 24  # every hour (from the second reading), 24 h ahead
    assert all(math.isfinite(r.expected) for r in forecasts)
    # ... and they are not the default model's.
    other = [r for r in default_rows if isinstance(r, ForecastRow)]
    assert [r.expected for r in forecasts] != [r.expected for r in other]


def test_model_version_follows_the_forecaster_spec() -> None:
    spec = ModelSpec.model_validate_json(SNARIMAX)
    versions = {
        EnergyProcessor().model_version,
        EnergyProcessor(forecaster=spec).model_version,
        EnergyProcessor(
            forecaster=spec.model_copy(update={"params": {"p": 3, "d": 0, "q": 1}})
        ).model_version,
    }
    assert len(versions) == 3
    assert (
        "TimedForecaster/v1+river.time_series.snarimax.SNARIMAX"
        in EnergyProcessor(forecaster=spec).model_version
    )
    assert (
        EnergyProcessor(forecaster=spec).model_version
        == EnergyProcessor(forecaster=ModelSpec.model_validate_json(SNARIMAX)).model_version
    )


def test_a_model_that_is_no_forecaster_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="neither a River forecaster nor a River regressor"):
        EnergyProcessor(forecaster=ModelSpec(path="river.anomaly.HalfSpaceTrees"))
    with pytest.raises(ValueError, match="SNARIMAX' cannot be built"):
        EnergyProcessor(forecaster=ModelSpec(path="river.time_series.SNARIMAX", params={"p": 1}))


def test_stored_forecasts_are_the_benchmarked_forecasters_output() -> None:
    """Hourly readings of a building, a fault in the third week: every stored forecast equals
    what the benchmark's model, fed the same readings the benchmark's way, predicts."""
    calendar = DATA_CALENDARS["energy"]
    proc = EnergyProcessor(calendar=calendar)
    state = proc.new_state("b1")
    bench_model = load_forecaster_factory(DEFAULT_FORECASTER, "energy")()
    compared = flagged = differs_from_detector = 0
    for r in _readings(21 * 24, step=timedelta(hours=1)):
        value = r.value + (
            40.0 if 15 * 24 <= (r.ts - T0) / timedelta(hours=1) < 15 * 24 + 10 else 0
        )
        effects = proc.process(
            state, device_id="b1", readings=[Reading(ts=r.ts, metric=r.metric, value=value)]
        )
        learn(bench_model, {"ts": r.ts}, value)  # as bench.forecast's online evaluation does
        flagged += sum(1 for x in effects.rows if isinstance(x, ScoreRow) and x.is_anomaly)
        for row in effects.rows:
            if isinstance(row, ForecastRow):
                want = bench_model.predict_one({"ts": row.target_ts})
                assert row.expected == want, (row.issued_at, row.target_ts)
                compared += 1
                x = {"ts": row.target_ts}
                differs_from_detector += state.detector.forecaster.predict_one(x) != want
    assert compared == 24 * (21 * 24 - 1)
    # The fault was flagged (the detector stopped learning it) and the detector's own forecaster,
    # which the stored forecasts used to come from, says something else.
    assert flagged > 0
    assert differs_from_detector > 0


class _Counting:
    """The meter's forecaster, with its questions counted."""

    def __init__(self, inner: object) -> None:
        self.inner, self.asked = inner, 0

    def predict_one(self, x: dict[str, datetime]) -> float:
        self.asked += 1
        return float(self.inner.predict_one(x))  # type: ignore[attr-defined]

    def learn_one(self, y: float, x: dict[str, datetime] | None = None) -> None:
        self.inner.learn_one(y, x)  # type: ignore[attr-defined]


def test_a_minute_meter_is_forecast_from_four_points_an_hour() -> None:
    """A meter reading every minute: each forecast hour is 15 x the forecaster's value at each
    quarter hour, 96 questions per refresh instead of 1,440; one refresh an hour, at the meter's
    own minute past it (meters crossing the hour together do not all refresh at once)."""
    proc = EnergyProcessor()
    state = proc.new_state("m1")
    minutes = _readings(4 * 60, step=timedelta(minutes=1))
    for r in minutes[: 3 * 60]:
        proc.process(state, device_id="m1", readings=[r])
    counting = _Counting(state.forecaster)
    state.forecaster = counting  # type: ignore[assignment]
    rows, refreshed_at = [], []
    for r in minutes[3 * 60 : 4 * 60]:
        before = counting.asked
        effects = proc.process(state, device_id="m1", readings=[r])
        forecasts = [x for x in effects.rows if isinstance(x, ForecastRow)]
        if forecasts:
            assert counting.asked - before == 24 * 4
            refreshed_at.append(r.ts)
            # What the forecaster says now (it learns every later reading).
            inner = counting.inner
            for row in forecasts:
                quarters = [row.target_ts + timedelta(minutes=15 * k) for k in range(4)]
                want = 15 * sum(inner.predict_one({"ts": t}) for t in quarters)
                assert row.expected == pytest.approx(want)
            rows = forecasts
    assert refreshed_at == [T0 + timedelta(hours=3) + refresh_offset("m1")]
    # The 24 hours after the reading's own hour.
    assert [row.target_ts for row in rows] == [T0 + timedelta(hours=h) for h in range(4, 28)]


def test_meters_refresh_their_forecasts_spread_over_the_hour() -> None:
    offsets = {refresh_offset(f"meter-{i}") for i in range(2000)}
    # 2,000 meters on 60 minutes: every minute has some, none has them all.
    assert len(offsets) == 60
    assert all(timedelta(0) <= o < timedelta(hours=1) for o in offsets)


WEATHER = "weather-1"


def _outdoor(hours: int) -> list[Reading]:
    """An hourly outdoor temperature with a daily cycle on a level that changes every day."""
    return [
        Reading(
            ts=T0 + timedelta(hours=h),
            metric="temperature_c",
            value=round(6.0 + 3.0 * ((h // 24) % 3) + 4.0 * math.sin(2 * math.pi * h / 24), 2),
        )
        for h in range(hours)
    ]


def _run(proc: EnergyProcessor, *, hours: int, weather: bool) -> tuple[list[object], object]:
    """A weather device's and a meter's hourly readings, the weather's first in each hour."""
    meter, temps = _readings(hours, step=timedelta(hours=1)), _outdoor(hours)
    weather_state, state = proc.new_state(WEATHER), proc.new_state("b1")
    rows: list[object] = []
    for temp, reading in zip(temps, meter, strict=True):
        if weather:
            rows += proc.process(weather_state, device_id=WEATHER, readings=[temp]).rows
        rows += proc.process(state, device_id="b1", readings=[reading]).rows
    return rows, state


def test_the_forecaster_learns_the_configured_devices_temperature() -> None:
    proc = EnergyProcessor(temperature_device=WEATHER)
    rows, state = _run(proc, hours=10 * 24, weather=True)
    model = state.forecaster  # type: ignore[attr-defined]
    assert isinstance(model, DayAheadForecaster)
    # The last two days of temperatures it learnt are the device's, hour by hour.
    temps = {r.ts: r.value for r in _outdoor(10 * 24)}
    learnt = {datetime.fromtimestamp(h * 3600, UTC): v for h, v in model.temperature.recent.items()}
    assert learnt == {ts: temps[ts] for ts in learnt}
    assert len(learnt) == 48
    assert model.temperature.square.n > 0
    # The weather device is no meter: no score, no forecast of its own.
    assert all(getattr(r, "device_id", "b1") == "b1" for r in rows)


def test_without_the_setting_the_meter_behaves_exactly_as_without_a_weather_device() -> None:
    """No temperature device configured: a weather device's readings change nothing, and the
    stored forecasts are those of the forecaster fed the times alone (as before the setting)."""
    hours = 8 * 24
    with_weather, _ = _run(EnergyProcessor(), hours=hours, weather=True)
    without, state = _run(EnergyProcessor(), hours=hours, weather=False)
    assert with_weather == without
    assert not state.forecaster.temperature.known  # type: ignore[attr-defined]
    bare = make_forecaster("energy")
    for r in _readings(hours, step=timedelta(hours=1)):
        bare.learn_one(r.value, {"ts": r.ts})
    last = [r for r in without if isinstance(r, ForecastRow)][-24:]
    assert [r.expected for r in last] == [bare.predict_one({"ts": r.target_ts}) for r in last]
    # Configured, the same readings give other forecasts.
    configured, _ = _run(EnergyProcessor(temperature_device=WEATHER), hours=hours, weather=True)
    assert [r for r in configured if isinstance(r, ForecastRow)] != [
        r for r in without if isinstance(r, ForecastRow)
    ]


def test_the_temperature_device_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert EnergySettings(dev_mode=True, _env_file=None).energy_temperature_device is None
    monkeypatch.setenv("TOWNPULSE_ENERGY_TEMPERATURE_DEVICE", WEATHER)
    assert EnergySettings(dev_mode=True, _env_file=None).energy_temperature_device == WEATHER
    monkeypatch.setenv("TOWNPULSE_ENERGY_TEMPERATURE_DEVICE", "no spaces allowed")
    with pytest.raises(ValueError, match="energy_temperature_device"):
        EnergySettings(dev_mode=True, _env_file=None)


def test_a_meter_saved_under_the_previous_forecaster_keeps_what_it_learnt() -> None:
    """The day-ahead forecaster replaced the calendar one as the default: an upgraded town's
    meters keep their detector, warm-up and verdicts; only the forecasts start afresh."""
    before = EnergyProcessor(
        forecaster=ModelSpec.model_validate({"path": "shared.ml.forecast.make_forecaster"})
    )
    after = EnergyProcessor()
    assert before.model_version != after.model_version
    state = before.new_state("m1")
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    readings = [
        Reading(ts=t0 + timedelta(minutes=15 * i), metric="energy_kwh", value=2.0 + i % 4)
        for i in range(96 * 3)
    ]
    before.process(state, device_id="m1", readings=readings)
    detector, warm = pickle.dumps(state.detector), pickle.dumps(state.warm)
    adopted = after.adopt(state, stored_version=before.model_version)
    assert adopted is not None
    assert pickle.dumps(adopted.detector) == detector and pickle.dumps(adopted.warm) == warm
    assert type(adopted.forecaster) is type(after.new_state("m2").forecaster)
    # Another detector or calendar is not adopted.
    other = before.model_version.replace("Europe/Paris", "Europe/Berlin")
    assert after.adopt(before.new_state("m3"), stored_version=other) is None
