"""Baselines a forecaster has to beat, learning online like the model (only past values).

They share River's vocabulary with the forecasters: ``predict_one(x)`` then, once the value is
known, ``learn_one(x, y)``; ``x["ts"]`` is the aware datetime of the target time. A baseline
returns ``None`` when it has nothing to say yet (no value a day ago, say); the evaluation then
leaves that target out for every method, so all are compared on the same hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

Features = dict[str, Any]


class Baseline(Protocol):
    def predict_one(self, x: Features) -> float | None: ...
    def learn_one(self, x: Features, y: float) -> None: ...


@dataclass
class SeasonalPersistence:
    """The value observed one season ago (a day, a week) at the same instant.

    Examples
    --------
    >>> from datetime import UTC
    >>> b = SeasonalPersistence(lag=timedelta(days=1))
    >>> t = datetime(2024, 1, 1, 9, tzinfo=UTC)
    >>> b.learn_one({"ts": t}, 42.0)
    >>> b.predict_one({"ts": t + timedelta(days=1)}), b.predict_one({"ts": t + timedelta(hours=1)})
    (42.0, None)
    """

    lag: timedelta
    seen: dict[datetime, float] = field(default_factory=dict)
    # Prune when the memory has doubled since the last pruning (and holds at least
    # `prune_floor` values), so pruning costs O(1) per reading on average.
    prune_floor: int = 4096
    kept: int = 0

    def predict_one(self, x: Features) -> float | None:
        return self.seen.get(x["ts"] - self.lag)

    def learn_one(self, x: Features, y: float) -> None:
        ts: datetime = x["ts"]
        self.seen[ts] = y
        if len(self.seen) > max(self.prune_floor, 2 * self.kept):
            # Keep what a prediction can still ask for (two lags back leaves room for horizons
            # up to a lag long).
            oldest = ts - 2 * self.lag
            self.seen = {k: v for k, v in self.seen.items() if k >= oldest}
            self.kept = len(self.seen)


def previous_day() -> SeasonalPersistence:
    return SeasonalPersistence(lag=timedelta(days=1))


def previous_week() -> SeasonalPersistence:
    return SeasonalPersistence(lag=timedelta(weeks=1))


@dataclass
class TimeOfWeekMean:
    """Historical average by time of week: the mean of all past values in the same weekly slot.

    The slot is (weekday, time of day rounded down to ``slot_minutes``) in the local time zone
    ``tz``, because people keep local hours.

    Examples
    --------
    >>> from datetime import UTC
    >>> b = TimeOfWeekMean(tz=UTC, slot_minutes=60)
    >>> monday_9 = datetime(2024, 1, 1, 9, 30, tzinfo=UTC)
    >>> for week, y in enumerate([10.0, 20.0]):
    ...     b.learn_one({"ts": monday_9 + timedelta(weeks=week)}, y)
    >>> b.predict_one({"ts": monday_9 + timedelta(weeks=2, minutes=-20)})
    15.0
    >>> b.predict_one({"ts": monday_9 + timedelta(days=1)}) is None
    True
    """

    tz: tzinfo
    slot_minutes: int = 60
    sums: dict[tuple[int, int], float] = field(default_factory=dict)
    counts: dict[tuple[int, int], int] = field(default_factory=dict)

    def slot(self, ts: datetime) -> tuple[int, int]:
        local = ts.astimezone(self.tz)
        return local.weekday(), (local.hour * 60 + local.minute) // self.slot_minutes

    def predict_one(self, x: Features) -> float | None:
        key = self.slot(x["ts"])
        n = self.counts.get(key)
        return None if not n else self.sums[key] / n

    def learn_one(self, x: Features, y: float) -> None:
        key = self.slot(x["ts"])
        self.sums[key] = self.sums.get(key, 0.0) + y
        self.counts[key] = self.counts.get(key, 0) + 1


@dataclass
class LastValue:
    """The last value seen (naive persistence), for series without a daily rhythm.

    >>> b = LastValue()
    >>> b.predict_one({}) is None
    True
    >>> b.learn_one({}, 3.0)
    >>> b.predict_one({})
    3.0
    """

    last: float | None = None

    def predict_one(self, x: Features) -> float | None:
        return self.last

    def learn_one(self, x: Features, y: float) -> None:
        self.last = y
