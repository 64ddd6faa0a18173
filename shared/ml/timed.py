"""Any River forecaster or regressor as a domain's model: what a sensor reads at a given time.

The domain services ask their models one question, "what does this sensor read at ``x["ts"]``"
(``predict_one``), and teach them each reading (``learn_one``). The project's own models
(`shared.ml.forecast.CalendarForecaster`, `shared.ml.weekly.WeeklyProfile`) read the time
themselves. A model a town names in its settings (`shared.ml.registry.ModelSpec`) may not:

- a River regressor (``river.linear_model.LinearRegression``, ``river.tree.HoeffdingTreeRegressor``
  ...) gets the reading's time as calendar features in the town's calendar (`CalendarFeatures`
  and a `StandardScaler` in front of it, a River pipeline);
- a River time-series forecaster (``river.time_series.SNARIMAX``, ``HoltWinters``...) learns the
  readings in order, and the value at a time is its forecast that many reporting periods ahead
  (`TimedForecaster`).

`build_forecaster` and `build_regressor` build a setting's model and wrap it as needed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from river import base, compose, preprocessing
from river.time_series.base import Forecaster

from shared.ml.calendar import TownCalendar
from shared.ml.periodic import PeriodicForecaster
from shared.ml.registry import ModelSpec

# Readings ahead a stepped forecaster is asked for at most: a week of 15-minute readings.
# Beyond it a seasonal model says nothing new and the cost grows with the horizon.
MAX_STEPS = 7 * 96


class PointForecaster(Protocol):
    """What the services need of a forecaster: River's ``learn_one(y, x)``, the value at a time,
    and its spread there when it knows it."""

    # ``x`` is typed loosely: each model declares its own feature dict.
    def learn_one(self, y: float, x: Any = None) -> None: ...
    def predict_one(self, x: Any) -> float: ...
    def spread_one(self, x: Any) -> float | None: ...


def calendar_features(ts: datetime, calendar: TownCalendar) -> dict[str, float]:
    """Numeric features of a time in the town's calendar.

    The hour of the local day as a point on a circle (23:00 is next to 00:00), the weekday, and
    one indicator per day type (workday, Saturday, Sunday or public holiday).

    >>> from datetime import UTC
    >>> f = calendar_features(datetime(2026, 5, 1, 10, tzinfo=UTC), TownCalendar())
    >>> f["hour"], f["weekday"], f["sunday"], f["workday"]
    (12.0, 4.0, 1.0, 0.0)
    """
    local = ts.astimezone(calendar.tz)
    hour = local.hour + local.minute / 60
    angle = 2 * math.pi * hour / 24
    kind = calendar.day_type(ts)
    return {
        "hour": hour,
        "hour_sin": math.sin(angle),
        "hour_cos": math.cos(angle),
        "weekday": float(local.weekday()),
        "workday": float(kind == "workday"),
        "saturday": float(kind == "saturday"),
        "sunday": float(kind == "sunday"),
    }


class CalendarFeatures(base.Transformer):
    """Replaces ``x["ts"]`` (an aware datetime) by its calendar features; other features pass.

    Parameters
    ----------
    timezone
        The town's IANA time zone.
    country
        Whose public holidays count as Sundays (a `holidays` country code, or "none").

    Examples
    --------
    >>> from datetime import UTC
    >>> t = CalendarFeatures(timezone="Europe/London", country="GB")
    >>> x = t.transform_one({"ts": datetime(2026, 3, 2, 9, tzinfo=UTC), "temp": 4.0})
    >>> x["hour"], x["workday"], x["temp"]
    (9.0, 1.0, 4.0)
    """

    def __init__(self, timezone: str = "Europe/Paris", country: str = "FR") -> None:
        self.timezone = timezone
        self.country = country
        self._calendar = TownCalendar(timezone, country)

    def transform_one(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        out = {k: v for k, v in x.items() if k != "ts"}
        ts = x.get("ts")
        if isinstance(ts, datetime):
            out.update(calendar_features(ts, self._calendar))
        return out


def with_calendar(regressor: base.Estimator, calendar: TownCalendar) -> compose.Pipeline:
    """A River pipeline: the town's calendar features, scaled, then `regressor`.

    Scaled because River's linear models diverge on unscaled features (an hour of 0-24 beside
    0/1 indicators); trees do not mind.
    """
    features = CalendarFeatures(calendar.timezone, calendar.country)
    return features | preprocessing.StandardScaler() | regressor


class TimedForecaster(PeriodicForecaster):
    """A River forecaster or regressor, asked for the value at a time.

    Parameters
    ----------
    model
        A River time-series forecaster (learns the readings in order; the value at ``x["ts"]``
        is its forecast as many reporting periods ahead, at most `max_steps`), or a regressor
        reading ``x`` (learns ``(x, y)``; give it calendar features with `with_calendar`).
        Features other than ``"ts"`` are not passed to a time-series forecaster: the services
        have none for it.
    max_steps
        The longest horizon, in reporting periods, asked of a time-series forecaster.

    Examples
    --------
    >>> from datetime import UTC
    >>> from river import time_series
    >>> f = TimedForecaster(time_series.HoltWinters(alpha=0.5))
    >>> t0 = datetime(2026, 3, 2, tzinfo=UTC)
    >>> for i in range(20):
    ...     f.learn_one(10.0, {"ts": t0 + timedelta(minutes=15 * i)})
    >>> round(f.predict_one({"ts": t0 + timedelta(hours=6)}), 6)
    10.0
    """

    version = 1

    def __init__(self, model: base.Estimator | None = None, max_steps: int = MAX_STEPS) -> None:
        from river import time_series

        # River's time-series classes are untyped.
        default = time_series.HoltWinters(alpha=0.3)  # type: ignore[no-untyped-call]
        self.model: Any = model if model is not None else default
        self.max_steps = max_steps
        self.last_ts: datetime | None = None
        # The shortest gap between readings: the sensor's reporting period.
        self.period: timedelta | None = None

    @classmethod
    def _unit_test_params(cls) -> Any:
        from river import linear_model, time_series

        yield {"model": time_series.HoltWinters(alpha=0.3)}  # type: ignore[no-untyped-call]
        yield {"model": with_calendar(linear_model.LinearRegression(), TownCalendar())}

    @property
    def _stepped(self) -> bool:
        return isinstance(self.model, Forecaster)

    def _default_step(self) -> timedelta:
        return timedelta(minutes=15)

    def learn_one(self, y: float, x: dict[Hashable, Any] | None = None) -> None:
        ts = self._ts(x)
        if self._stepped:
            self.model.learn_one(float(y))
        else:
            self.model.learn_one({**(x or {}), "ts": ts}, float(y))
        self._advance(ts)

    def _steps(self, ts: datetime) -> int:
        if self.last_ts is None or self.period is None:
            return 1
        return min(self.max_steps, max(1, round((ts - self.last_ts) / self.period)))

    def predict_one(self, x: Mapping[Hashable, Any]) -> float:
        ts = self._ts(x)
        if not self._stepped:
            return _finite(self.model.predict_one({**x, "ts": ts}))
        if self.last_ts is None:
            return 0.0  # a time-series model that saw nothing has nothing to say
        steps = self._steps(ts)
        return _finite(self.model.forecast(horizon=steps)[-1])

    def spread_one(self, x: Mapping[Hashable, Any]) -> float | None:
        """Unknown: the detector then judges residuals by their recent typical size alone."""
        return None

    def forecast(self, horizon: int, xs: list[dict[Hashable, Any]] | None = None) -> list[float]:
        if self._stepped and self.last_ts is not None:
            # One call for the whole horizon, not one per step.
            values = self.model.forecast(horizon=min(horizon, self.max_steps))
            values += [values[-1]] * (horizon - len(values))
            return [_finite(v) for v in values]
        return super().forecast(horizon, xs)


def _finite(value: Any) -> float:
    v = float(value) if value is not None else 0.0
    return v if math.isfinite(v) else 0.0


def build_forecaster(spec: ModelSpec, *, calendar: TownCalendar, **context: Any) -> Any:
    """The forecaster a setting names, ready to be asked for the value at a time.

    The project's own forecasters (with ``predict_one`` and ``spread_one``) are used as built;
    River time-series forecasters and regressors are wrapped (see the module's docstring).
    `context` is passed to the model where its signature accepts it (e.g. ``correct=False``).
    """
    model = spec.build(calendar=calendar, **context)
    if hasattr(model, "spread_one") and hasattr(model, "predict_one"):
        return model
    if isinstance(model, base.Regressor):
        return TimedForecaster(with_calendar(model, calendar))
    if isinstance(model, Forecaster):
        return TimedForecaster(model)
    raise ValueError(f"model {spec.path!r} is neither a River forecaster nor a River regressor")


def build_regressor(spec: ModelSpec, *, calendar: TownCalendar) -> Any:
    """The regressor-style model a setting names (``learn_one(x, y)``, ``x["ts"]`` the time).

    A River regressor gets the town's calendar features in front of it; a model that reads the
    time itself (e.g. `shared.ml.weekly.WeeklyProfile`) is used as built.
    """
    model = spec.build(calendar=calendar)
    if isinstance(model, base.Regressor):
        return with_calendar(model, calendar)
    if isinstance(model, Forecaster) or not (
        hasattr(model, "learn_one") and hasattr(model, "predict_one")
    ):
        raise ValueError(f"model {spec.path!r} is not a regressor: learn_one(x, y), predict_one(x)")
    return model
