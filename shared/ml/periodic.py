"""What the project's forecasters share: the reading's time read from ``x["ts"]``, the sensor's
reporting period learnt from the gaps, and River's ``forecast`` over the next readings.

`shared.ml.forecast.CalendarForecaster`, `shared.ml.dayahead.DayAheadForecaster` and
`shared.ml.timed.TimedForecaster` derive from `PeriodicForecaster`. It holds no state of its own:
the attributes (``last_ts``, ``period``) are the subclasses' as before, so checkpoints pickled
before it existed load unchanged (a pickle names the instance's class and its attributes only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from river.time_series.base import Forecaster

# Where a model that has seen no reading starts counting, asked for a time it was not given:
# a Monday, though any fixed start would do.
_START = datetime(2000, 1, 3, tzinfo=UTC)


class PeriodicForecaster(Forecaster):
    """A River forecaster asked for the value at ``x["ts"]``, its readings a period apart.

    A subclass sets ``last_ts`` and ``period`` to None in its ``__init__``, calls `_advance`
    after learning each reading, and says how far apart readings are before any gap is seen
    (`_default_step`). A reading without ``"ts"`` is taken to follow the previous one by the
    learnt period.
    """

    last_ts: datetime | None
    # The shortest gap between readings: the sensor's reporting period.
    period: timedelta | None

    def _default_step(self) -> timedelta:
        raise NotImplementedError

    def _step(self) -> timedelta:
        return self.period or self._default_step()

    def _ts(self, x: Mapping[Any, Any] | None) -> datetime:
        if x is not None and isinstance(ts := x.get("ts"), datetime):
            return ts
        if self.last_ts is None:
            return _START
        return self.last_ts + self._step()

    def _advance(self, ts: datetime) -> None:
        """``ts`` is the time of the reading just learnt: the period and the latest time."""
        if self.last_ts is not None and ts > self.last_ts:
            gap = ts - self.last_ts
            self.period = gap if self.period is None else min(self.period, gap)
        self.last_ts = ts

    def predict_one(self, x: Any) -> float:
        raise NotImplementedError

    def forecast(self, horizon: int, xs: list[dict[Any, Any]] | None = None) -> list[float]:
        """The values at ``xs[i]["ts"]`` when given, else one period after another from the
        latest reading."""
        start = self.last_ts or self._ts(None)
        step = self._step()
        return [
            self.predict_one(xs[i] if xs is not None else {"ts": start + (i + 1) * step})
            for i in range(horizon)
        ]
