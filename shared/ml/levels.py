"""A building's level and schedule, learnt: level shifts, drifts and out-of-hours consumption.

The residual detector (`shared.ml.anomaly`) judges each reading against a forecast that follows
the latest readings within hours: a step change or a slow drift becomes its normal before it is
ever flagged. `LevelWatch` keeps what that forecast lets go of, with every duration in time
(each reading weighs for the time since the previous one, so a 1-minute, a 15-minute and an
hourly meter learn at the same pace):

- the meter's **shape**: its usual consumption per day type (working day, Saturday, Sunday or
  public holiday) and hour of the local day, relative to its level, and the spread around it;
- its **level** at three paces: a short one (the last day or so, `SHORT`), a middle one
  (`MIDDLE`) and a long one (`LONG`), each the ratio of the readings to the shape they should
  have followed (sums over exponentially fading windows, so night hours weigh what they read);
- its **schedule**: an hour is *unoccupied* when its shape lies in the lower part of the range
  between the building's base load (its lowest hour) and its peak (`UNOCCUPIED`); a building
  whose peak is under `SCHEDULED` times its base has no schedule to learn (a data centre).

What it flags (`LevelVerdict.kind`):

- ``off_hours``: in an unoccupied hour, a reading above the learnt base for that hour (times the
  long level) by more than `K_OFF_HOURS` of its own spread and `MIN_OFF_HOURS` of it: lights,
  heating or ventilation left on at night, over a weekend or a holiday;
- ``shift``: the short level departs from the long one by more than `MIN_SHIFT` (log ratio) and
  `K_LEVEL` times that ratio's usual spread: a step change, up or down, found by change-point
  rather than by waiting for the profile to drift;
- ``drift``: the middle level (the last few days) departs from the long one by more than
  `MIN_DRIFT` and `K_LEVEL` times that ratio's usual spread: a slow rise or fall over days.

Once a shift or a drift has been alerted, `accept` makes the short level the long one: the model
relearns the new level rather than alerting forever. Nothing is flagged out of hours before the
watch has seen `LONG` of readings and the reading's hour on `WARM_DAYS` days, nor a level change
before `SPREAD_LEARNT`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from river import base

from shared.ml.calendar import TownCalendar

# Paces of the three levels (the time constant of each fading window).
SHORT = timedelta(days=1)
MIDDLE = timedelta(days=4)
LONG = timedelta(days=21)
# How fast the usual spread of the short/long log ratio is learnt, and the shape of each hour:
# an hour's reading weighs `SHAPE_ALPHA` in its cell (about ten occurrences of it remembered).
NOISE = timedelta(days=90)
# The spread of the levels' ratios is learnt from this long after the first reading (the levels
# have settled by then). The schedule is trusted after `LONG`; a level change is flagged only
# once that spread has been learnt over `SPREAD_LEARNT` (weeks of weather and use: in a
# simulated town, four weeks of March learnt the heating's fall in April as a level shift).
SETTLED = timedelta(days=7)
SPREAD_LEARNT = timedelta(days=56)
SHAPE_ALPHA = 0.1
WARM_DAYS = 3
# Gaps longer than this (an outage of the meter, a gap in the data) count as this long.
MAX_GAP = timedelta(hours=6)
# A shift: the short level this far from the long one (log ratio: 0.18 is about +20 %/-16 %),
# and `K_LEVEL` times the usual spread of that ratio. A drift: the middle level this far from
# the long one, and `K_LEVEL` times the usual spread of that ratio (smaller: it averages days).
MIN_SHIFT = 0.18
MIN_DRIFT = 0.1
K_LEVEL = 3.0
# Out of hours: above the base by this many of the hour's spreads (standard deviations) and this
# share of the base, at least.
K_OFF_HOURS = 6.0
MIN_OFF_HOURS = 0.2
# An hour is unoccupied below this point of the range from base load to peak; a building with
# a peak under `SCHEDULED` times its base has no schedule.
UNOCCUPIED = 0.4
SCHEDULED = 1.3

Cell = tuple[str, int]  # (day type, local hour)


@dataclass(frozen=True, slots=True)
class LevelVerdict:
    """What the watch says of a reading, before learning it."""

    kind: str | None  # "off_hours", "shift", "drift" or None
    expected: float  # the shape of the reading's hour times the long level
    limit: float  # above this an unoccupied hour's reading is flagged (inf when occupied)
    shift: float  # log ratio of the short level to the long one
    threshold: float  # |shift| beyond this is a shift or a drift (inf while warming up)
    unoccupied: bool
    schedule_known: bool  # whether `unoccupied` comes from a learnt schedule

    @property
    def change(self) -> float:
        """The level change, relative (0.25: a quarter more than the long level)."""
        return math.exp(self.shift) - 1.0


@dataclass(slots=True)
class _Shape:
    mean: float
    dev: float  # mean absolute deviation around the mean
    days: int
    last_day: int

    def __reduce__(self) -> tuple[type[_Shape], tuple[float, float, int, int]]:
        return (_Shape, (self.mean, self.dev, self.days, self.last_day))


class _Level:
    """Sums of readings and of the shape they should have followed, fading in time."""

    __slots__ = ("den", "num", "tau")

    def __init__(self, tau: timedelta) -> None:
        self.tau = tau.total_seconds()
        self.num = 0.0
        self.den = 0.0

    def __getstate__(self) -> tuple[float, float, float]:
        return (self.tau, self.num, self.den)

    def __setstate__(self, state: tuple[float, float, float]) -> None:
        self.tau, self.num, self.den = state

    def add(self, value: float, shape: float, gap: float) -> None:
        keep = math.exp(-gap / self.tau)
        self.num = self.num * keep + value
        self.den = self.den * keep + shape

    @property
    def ratio(self) -> float:
        return self.num / self.den if self.den > 1e-12 and self.num > 0 else 1.0

    def set_ratio(self, ratio: float) -> None:
        self.num = ratio * self.den


def _alpha(gap: float, tau: timedelta) -> float:
    return 1.0 - math.exp(-gap / tau.total_seconds())


class LevelWatch(base.AnomalyDetector):
    """A meter's learnt level, shape and schedule; flags shifts, drifts and out-of-hours use.

    Parameters
    ----------
    timezone, country
        The town's calendar: local hours, and the public holidays that count as Sundays.
    on
        The feature holding the reading (``x["ts"]`` is its time).

    Examples
    --------
    >>> from datetime import UTC
    >>> w, t0 = LevelWatch("Europe/London", "GB"), datetime(2026, 2, 2, tzinfo=UTC)
    >>> def office(ts):  # 10 kWh at night and weekends, 25 in working hours, a little noise
    ...     busy = ts.weekday() < 5 and 8 <= ts.hour < 18
    ...     return (25.0 if busy else 10.0) * (1 + 0.02 * ((ts.hour * 7) % 5 - 2))
    >>> for h in range(24 * 63):
    ...     ts = t0 + timedelta(hours=h)
    ...     w.learn_one({"ts": ts, "value": office(ts)})
    >>> night = t0 + timedelta(days=63, hours=2)
    >>> w.explain_one({"ts": night, "value": office(night)}).kind is None
    True
    >>> w.explain_one({"ts": night, "value": 14.0}).kind  # 40 % above the base, at 2:00
    'off_hours'
    >>> for h in range(12):  # the whole building steps up by half
    ...     ts = night + timedelta(hours=h)
    ...     w.learn_one({"ts": ts, "value": 1.5 * office(ts)})
    >>> v = w.explain_one({"ts": night + timedelta(hours=12), "value": 37.5})
    >>> v.kind, round(v.change, 2)
    ('shift', 0.22)
    >>> w.accept()
    >>> w.explain_one({"ts": night + timedelta(hours=12), "value": 37.5}).kind is None
    True
    """

    def __init__(
        self, timezone: str = "Europe/Paris", country: str = "FR", on: str = "value"
    ) -> None:
        self.timezone = timezone
        self.country = country
        self.on = on
        self.calendar = TownCalendar(timezone, country)
        self.shape: dict[Cell, _Shape] = {}
        self.short, self.middle, self.long = _Level(SHORT), _Level(MIDDLE), _Level(LONG)
        # Exponentially weighted means of the squared short/long and middle/long log ratios.
        self.noise = 0.0
        self.noise_middle = 0.0
        self.noise_time = 0.0  # seconds of readings they have learnt (their bias correction)
        self.first_ts: datetime | None = None
        self.last_ts: datetime | None = None

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {"on": "value"}

    # ---- reading ------------------------------------------------------------------------------

    def _x(self, x: Mapping[Any, Any]) -> tuple[datetime | None, float]:
        value = x.get(self.on)
        y = math.nan if value is None else float(value)
        return x.get("ts"), y

    def _cell(self, ts: datetime) -> Cell:
        kind, hour = self.calendar.key(ts, slot_minutes=60)
        return kind, hour

    def _gap(self, ts: datetime) -> float:
        if self.last_ts is None or ts <= self.last_ts:
            return 0.0
        return min(ts - self.last_ts, MAX_GAP).total_seconds()

    def _shift(self) -> float:
        return math.log(self.short.ratio / self.long.ratio)

    def _drift(self) -> float:
        return math.log(self.middle.ratio / self.long.ratio)

    def _age(self) -> timedelta:
        if self.first_ts is None or self.last_ts is None:
            return timedelta(0)
        return self.last_ts - self.first_ts

    def warming(self) -> dict[str, datetime]:
        """What of the watch still warms up, and until when if the meter goes on reporting:
        its schedule (out of hours) until `LONG` after its first reading, level changes until
        `SPREAD_LEARNT`; empty once both are learnt, or before any reading."""
        if self.first_ts is None:
            return {}
        parts = {"schedule": self.first_ts + LONG, "level_watch": self.first_ts + SPREAD_LEARNT}
        return {part: until for part, until in parts.items() if self._age() < until - self.first_ts}

    def _spread(self, mean_square: float) -> float:
        """An exponentially weighted mean square, corrected for its start from zero."""
        weight = 1.0 - math.exp(-self.noise_time / NOISE.total_seconds())
        return math.sqrt(mean_square / weight) if weight > 0 else 0.0

    def _threshold(self) -> float:
        if self._age() < SPREAD_LEARNT:
            return math.inf
        return max(MIN_SHIFT, K_LEVEL * self._spread(self.noise))

    def _drift_threshold(self) -> float:
        if self._age() < SPREAD_LEARNT:
            return math.inf
        return max(MIN_DRIFT, K_LEVEL * self._spread(self.noise_middle))

    def _unoccupied(self, cell: Cell) -> bool:
        warm = [s.mean for s in self.shape.values() if s.days >= WARM_DAYS]
        own = self.shape.get(cell)
        if own is None or own.days < WARM_DAYS or len(warm) < 2:
            return False
        low, high = min(warm), max(warm)
        if high < SCHEDULED * max(low, 1e-12):
            return False
        return own.mean <= low + UNOCCUPIED * (high - low)

    def explain_one(self, x: Mapping[Any, Any]) -> LevelVerdict:
        """The verdict on `x` (``{"ts": ..., "value": ...}``), without learning it."""
        ts, value = self._x(x)
        if ts is None or math.isnan(value):
            return LevelVerdict(
                None, math.nan, math.inf, 0.0, math.inf, unoccupied=False, schedule_known=False
            )
        cell = self._cell(ts)
        own = self.shape.get(cell)
        level = self.long.ratio
        expected = math.nan if own is None else own.mean * level
        shift, threshold = self._shift(), self._threshold()
        known = self._age() >= LONG
        unoccupied = known and self._unoccupied(cell)
        limit = math.inf
        if unoccupied and own is not None:
            spread = 1.25 * own.dev  # a mean absolute deviation, as a standard deviation
            limit = level * (own.mean + max(K_OFF_HOURS * spread, MIN_OFF_HOURS * own.mean))
        kind = None
        if value > limit:
            kind = "off_hours"
        elif abs(self._drift()) > self._drift_threshold():
            kind = "drift"
        elif abs(shift) > threshold:
            kind = "shift"
        return LevelVerdict(kind, expected, limit, shift, threshold, unoccupied, known)

    def score_one(self, x: Mapping[Any, Any]) -> float:
        """How far out `x` is, in [0, 1): 0.5 at the flagging limit (out of hours, or of the
        level), 0 when nothing is known yet."""
        v = self.explain_one(x)
        _, value = self._x(x)
        ratios = [abs(v.shift) / v.threshold if math.isfinite(v.threshold) else 0.0]
        if math.isfinite(v.limit) and v.limit > v.expected:
            ratios.append(max(0.0, (value - v.expected) / (v.limit - v.expected)))
        r = max(ratios)
        return r / (1.0 + r)

    # ---- learning -----------------------------------------------------------------------------

    def learn_one(
        self, x: Mapping[Any, Any], *, update_model: bool = True, measure: bool = True
    ) -> None:
        """Learn a reading: the short and middle levels and the spread of its hour, and (unless
        `update_model` is False: a reading flagged as anomalous, which must not become normal)
        the shape, the long level and the usual spread of the levels' ratios. A reading not to
        `measure` (a period a technician said was expected) is not learnt at all."""
        ts, value = self._x(x)
        if ts is None or math.isnan(value) or not measure:
            return
        gap = self._gap(ts)
        if self.first_ts is None:
            self.first_ts = ts
        cell = self._cell(ts)
        own = self.shape.get(cell)
        if own is not None:
            # The short and middle levels measure what the meter reads now, faults included;
            # the long one is the normal it is compared with.
            self.short.add(value, own.mean, gap)
            self.middle.add(value, own.mean, gap)
        if update_model and own is not None:
            self.long.add(value, own.mean, gap)
            if self._age() >= SETTLED:
                a = _alpha(gap, NOISE)
                self.noise += a * (self._shift() ** 2 - self.noise)
                self.noise_middle += a * (self._drift() ** 2 - self.noise_middle)
                self.noise_time += gap
        # The spread learns every reading, flagged or not: a building used now and then at night
        # is judged by how it really varies there, not by its quiet nights alone.
        self._learn_shape(cell, ts, value / self.short.ratio, gap, mean_too=update_model)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)

    def _learn_shape(
        self, cell: Cell, ts: datetime, y: float, gap: float, *, mean_too: bool
    ) -> None:
        day = ts.astimezone(self.calendar.tz).toordinal()
        own = self.shape.get(cell)
        if own is None:
            if mean_too:
                self.shape[cell] = _Shape(y, 0.0, 1, day)
            return
        if day != own.last_day:
            own.days += 1
            own.last_day = day
        # An hour's worth of readings weighs `SHAPE_ALPHA`, whatever the meter's interval;
        # plainly averaged over the first days.
        hours = min(gap, 3600.0) / 3600.0 if gap > 0 else 1.0
        a = 1.0 - (1.0 - max(SHAPE_ALPHA, 1.0 / (own.days + 1))) ** hours
        own.dev += a * (abs(y - own.mean) - own.dev)
        if mean_too:
            own.mean += a * (y - own.mean)

    def accept(self) -> None:
        """The shift or drift has been alerted: its level is the meter's level from now on."""
        self.long.set_ratio(self.short.ratio)
        self.middle.set_ratio(self.short.ratio)
