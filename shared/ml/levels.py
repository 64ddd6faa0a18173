"""A building's level and schedule, learnt: level shifts, drifts and out-of-hours consumption.

The residual detector (`shared.ml.anomaly`) judges each reading against a forecast that follows
the latest readings within hours: a step change or a slow drift becomes its normal before it is
ever flagged. `LevelWatch` keeps what that forecast lets go of, with every duration in time
(each reading weighs for the time since the previous one, so a 1-minute, a 15-minute and an
hourly meter learn at the same pace):

- the meter's **shape**: its usual consumption per day type (working day, Saturday, Sunday or
  public holiday) and hour of the local day, relative to its level, and the spread around it;
- its **level** at two paces: a short one (the last day or so, `SHORT`) and a long one (`LONG`),
  each the ratio of the readings to the shape they should have followed (sums over
  exponentially fading windows, so night hours weigh what they read);
- its **days**: each local day's log ratio of its readings to what the shape and the long level
  expected, and the usual spread of that ratio (learnt over `NOISE`), which a two-sided CUSUM
  (Page's cumulative sum) accumulates in units of that spread;
- its **schedule**: an hour is *unoccupied* when its shape lies in the lower part of the range
  between the building's base load (its lowest hour) and its peak (`UNOCCUPIED`); a building
  whose peak is under `SCHEDULED` times its base has no schedule to learn (a data centre).

What it flags (`LevelVerdict.kind`):

- ``off_hours``: in an unoccupied hour, a reading above the learnt base for that hour (times the
  long level) by more than `K_OFF_HOURS` of its own spread and `MIN_OFF_HOURS` of it: lights,
  heating or ventilation left on at night, over a weekend or a holiday;
- ``shift``: the days' cumulative sum, up or down, has passed `CUSUM_LIMIT` spreads (each day
  counting beyond `CUSUM_SLACK` spreads) and the last whole days stood more than `MIN_CHANGE`
  (log ratio, their mean) from the long level: a step change found by change point (at the
  end of a local day), rather than by waiting for the profile to drift;
- ``drift``: the same, when the days' departures grew along the change (four days at least
  beyond the slack, the later half more than twice the earlier half): a slow rise or fall.

While the cumulative sum stands above half its limit the long level learns nothing (a drift
must not become the normal it is compared with); a run that never reaches `MIN_CHANGE` in
`RUN_DAYS` is a small change for good, taken as the level silently. A technician's false alarm
widens the limits (`widen`): a level change's in that direction, the out-of-hours allowance in
the hours of the alert (its day type and hour), by `WIDEN` per verdict (at most `MAX_WIDEN`),
for `WIDEN_DAYS` of readings after the episode.

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

# Paces of the two levels (the time constant of each fading window).
SHORT = timedelta(days=1)
LONG = timedelta(days=21)
# How fast the usual spread of the days' ratios is learnt, and the shape of each hour: an hour's
# reading weighs `SHAPE_ALPHA` in its cell (about ten occurrences of it remembered).
NOISE = timedelta(days=60)
# The spread of the days' ratios is learnt from this long after the first reading (the levels
# have settled by then). The schedule is trusted after `LONG`; a level change is flagged only
# once that spread has been learnt over `SPREAD_LEARNT` (weeks of weather and use: in a
# simulated town, four weeks of March learnt the heating's fall in April as a level shift).
SETTLED = timedelta(days=7)
SPREAD_LEARNT = timedelta(days=56)
SHAPE_ALPHA = 0.1
WARM_DAYS = 3
# Gaps longer than this (an outage of the meter, a gap in the data) count as this long.
MAX_GAP = timedelta(hours=6)
# The level change test: each day adds its departure beyond `CUSUM_SLACK` spreads; a change is
# flagged past `CUSUM_LIMIT` spreads, once the last `MEAN_DAYS` whole days are `MIN_CHANGE` (log
# ratio: 0.28 is about +32 %/-24 %) from the long level on average. A run that has not got
# there in `RUN_DAYS` is accepted.
CUSUM_SLACK = 0.5
# The days' spread is taken as this at least (log ratio): a meter steadier than that from day to
# day would sum departures no one would call a change.
MIN_DAY_SPREAD = 0.02
CUSUM_LIMIT = 8.0
MIN_CHANGE = 0.28
RUN_DAYS = 21
# The size of a change: the mean of the last whole days (one day alone is too noisy a measure).
MEAN_DAYS = 3
# A technician's false alarm multiplies the limits of its context by `WIDEN` (at most
# `MAX_WIDEN` in all), for `WIDEN_DAYS` after the episode; at most `MAX_VERDICTS` remembered.
WIDEN = 1.5
MAX_WIDEN = 4.0
WIDEN_DAYS = 28
MAX_VERDICTS = 8
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
    shift: float  # log ratio of the last whole day to the long level
    threshold: float  # |shift| beyond this is a shift or a drift (inf: no change suspected)
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
    >>> for h in range(22, 96):  # the whole building steps up by half, for three whole days
    ...     ts = night + timedelta(hours=h)
    ...     w.learn_one({"ts": ts, "value": 1.5 * office(ts)})
    >>> v = w.explain_one({"ts": night + timedelta(hours=104), "value": 37.5})  # 10:00
    >>> v.kind, round(v.change, 1)
    ('shift', 0.4)
    >>> w.accept()
    >>> w.explain_one({"ts": night + timedelta(hours=104), "value": 37.5}).kind is None
    True
    """

    # Added since the first pickled watches: `_fill` sets them (`__init__` and on load).
    day: int | None
    day_value: float
    day_expected: float
    day_noise: float
    day_weight: float
    noise_days: int
    up: float
    down: float
    run: list[float]
    run_days: int
    last_day: float
    recent: list[float]
    changes: list[tuple[datetime, str]]
    widened: dict[str, tuple[frozenset[str], datetime]]

    def __init__(
        self, timezone: str = "Europe/Paris", country: str = "FR", on: str = "value"
    ) -> None:
        self.timezone = timezone
        self.country = country
        self.on = on
        self.calendar = TownCalendar(timezone, country)
        self.shape: dict[Cell, _Shape] = {}
        self.short, self.long = _Level(SHORT), _Level(LONG)
        self.first_ts: datetime | None = None
        self.last_ts: datetime | None = None
        self._fill()

    def _fill(self) -> None:
        """The attributes added since the first pickled watches (checkpoints), at their start:
        a watch restored from before them flags no level change until it has learnt the days'
        spread, and keeps its shape, levels and schedule."""
        defaults: dict[str, Any] = {
            "day": None,  # the local day being summed (its ordinal)
            "day_value": 0.0,
            "day_expected": 0.0,
            # Exponentially weighted mean square of the days' log ratios, its weight, and how
            # many days it has learnt.
            "day_noise": 0.0,
            "day_weight": 0.0,
            "noise_days": 0,
            "up": 0.0,  # the two-sided CUSUM, in spreads
            "down": 0.0,
            "run": [],  # the current run's days, in spreads (at most `RUN_DAYS`)
            "run_days": 0,
            "last_day": 0.0,  # the last whole days' mean log ratio to the long level
            "recent": [],  # the last `MEAN_DAYS` whole days' log ratios
            "changes": [],  # (time, "up"/"down") of the last level changes alerted
            "widened": {},  # alert id -> (contexts, until): technicians' false alarms
        }
        for name, value in defaults.items():
            if name not in self.__dict__:
                setattr(self, name, value)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fill()

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

    def _spread_learnt(self) -> bool:
        return self.noise_days >= (SPREAD_LEARNT - SETTLED) / timedelta(days=1)

    def _suspicious(self) -> bool:
        """The days' sum is half-way to a change: the long level must not follow it."""
        return max(self.up, self.down) > CUSUM_LIMIT / 2

    def _factor(self, context: str, ts: datetime) -> float:
        """How much technicians' false alarms widened this context's limits (1: not at all)."""
        n = sum(1 for c, until in self.widened.values() if context in c and ts <= until)
        return min(MAX_WIDEN, WIDEN**n) if n else 1.0

    def _change(self, day: float, ts: datetime) -> tuple[str | None, float]:
        """A level change (its kind) and how far the last day (`day`, log ratio) must stand
        from the long level for one (inf: the cumulative sum does not say there is one yet)."""
        if not self._spread_learnt():
            return None, math.inf
        for direction, cusum, sign in (("up", self.up, 1.0), ("down", self.down, -1.0)):
            f = self._factor(direction, ts)
            if cusum > CUSUM_LIMIT * f:
                if sign * day > MIN_CHANGE * f:
                    return ("drift" if self._growing(sign) else "shift"), MIN_CHANGE * f
                return None, MIN_CHANGE * f
        return None, math.inf

    def _growing(self, sign: float) -> bool:
        """A drift rather than a step: the days departing beyond the slack in the change's
        direction (the last ones of the run) are four at least, and their later half departed
        more than twice as far as their earlier half."""
        days: list[float] = []
        for z in reversed(self.run):
            if sign * z <= CUSUM_SLACK:
                break
            days.insert(0, sign * z)
        n = len(days)
        return n >= 4 and sum(days[n // 2 :]) > 2 * sum(days[: n // 2])

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
        shift = self.last_day
        change, threshold = self._change(shift, ts)
        known = self._age() >= LONG
        unoccupied = known and self._unoccupied(cell)
        limit = math.inf
        if unoccupied and own is not None:
            spread = 1.25 * own.dev  # a mean absolute deviation, as a standard deviation
            allowance = max(K_OFF_HOURS * spread, MIN_OFF_HOURS * own.mean)
            limit = level * (own.mean + self._factor(_context(cell), ts) * allowance)
        kind = "off_hours" if value > limit else change
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
        """Learn a reading: the short level, the day's sums and the spread of its hour, and
        (unless `update_model` is False: a reading flagged as anomalous, which must not become
        normal) the shape and the long level. A reading not to `measure` (a period a technician
        said was expected) is not learnt at all."""
        ts, value = self._x(x)
        if ts is None or math.isnan(value) or not measure:
            return
        gap = self._gap(ts)
        if self.first_ts is None:
            self.first_ts = ts
        day = ts.astimezone(self.calendar.tz).toordinal()
        if self.day is not None and day > self.day:
            self._close_day()
        if self.day is None or day > self.day:
            self.day, self.day_value, self.day_expected = day, 0.0, 0.0
        cell = self._cell(ts)
        own = self.shape.get(cell)
        if own is not None:
            # The short level and the day measure what the meter reads now, faults included;
            # the long one is the normal they are compared with.
            self.short.add(value, own.mean, gap)
            self.day_value += value
            self.day_expected += own.mean * self.long.ratio
            if update_model and not self._suspicious():
                self.long.add(value, own.mean, gap)
        # The spread learns every reading, flagged or not: a building used now and then at night
        # is judged by how it really varies there, not by its quiet nights alone.
        self._learn_shape(cell, ts, value / self.short.ratio, gap, mean_too=update_model)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        if self.widened:
            self.widened = {k: w for k, w in self.widened.items() if ts <= w[1]}

    def _close_day(self) -> None:
        """The day is over: its departure from the long level goes into the CUSUM, in units of
        the days' usual spread, which it then learns (unless a change is suspected)."""
        if self.day_value <= 0 or self.day_expected <= 0:
            return  # a day without consumption (an outage, a gap) says nothing of the level
        r = math.log(self.day_value / self.day_expected)
        self.recent = [*self.recent, r][-MEAN_DAYS:]
        self.last_day = sum(self.recent) / len(self.recent)
        if self._spread_learnt() and self.day_noise > 0:
            z = r / max(MIN_DAY_SPREAD, math.sqrt(self.day_noise / self.day_weight))
            self.up = max(0.0, self.up + z - CUSUM_SLACK)
            self.down = max(0.0, self.down - z - CUSUM_SLACK)
            if max(self.up, self.down) > 0:
                self.run = [*self.run, z][-RUN_DAYS:]
                self.run_days += 1
            else:
                self.run, self.run_days = [], 0
            if self.run_days >= RUN_DAYS:
                self._reset()  # a small change for good: the new level, silently
        if self._age() >= SETTLED and not self._suspicious():
            a = 1.0 - math.exp(-timedelta(days=1) / NOISE)
            self.day_noise += a * (r * r - self.day_noise)
            self.day_weight += a * (1.0 - self.day_weight)
            self.noise_days += 1

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

    def _reset(self) -> None:
        level = self.short.ratio
        self.long.set_ratio(level)
        self.up = self.down = 0.0
        self.run, self.run_days, self.last_day, self.recent = [], 0, 0.0, []

    def accept(self) -> None:
        """The shift or drift has been alerted: its level is the meter's level from now on."""
        if self.last_ts is not None and max(self.up, self.down) > CUSUM_LIMIT:
            direction = "up" if self.up >= self.down else "down"
            self.changes = [*self.changes, (self.last_ts, direction)][-MAX_VERDICTS:]
        self._reset()

    # ---- feedback -----------------------------------------------------------------------------

    def widen(self, alert_id: str, *, kind: str, start: datetime, end: datetime | None) -> None:
        """A technician's false alarm on an alert of this watch's `kind` (``off_hours``,
        ``shift`` or ``drift``) over [start, end] (end None: going on): its context's limits
        are widened by `WIDEN` until `WIDEN_DAYS` after the episode. For out-of-hours use the
        context is the day type and hour of each of the episode's hours (its first
        `MAX_WIDEN_SPAN`); for a level change, its direction (both if it is not remembered)."""
        last = end or self.last_ts or start
        if kind == "off_hours":
            contexts = {
                _context(self._cell(start + k * _HOUR))
                for k in range(int(min(last - start, MAX_WIDEN_SPAN) / _HOUR) + 1)
            }
        elif kind in ("shift", "drift"):
            early = start - timedelta(days=1)
            contexts = {d for t, d in self.changes if early <= t and (end is None or t <= end)}
            contexts = contexts or {"up", "down"}
        else:
            return
        self.widened[alert_id] = (frozenset(contexts), last + timedelta(days=WIDEN_DAYS))
        while len(self.widened) > MAX_VERDICTS:
            del self.widened[min(self.widened, key=lambda a: self.widened[a][1])]

    def unwiden(self, alert_id: str) -> None:
        """A later verdict on the same alert replaces what a false alarm widened."""
        self.widened.pop(alert_id, None)


_HOUR = timedelta(hours=1)
# The hours of an out-of-hours episode whose context a false alarm widens: a long weekend.
MAX_WIDEN_SPAN = timedelta(days=4)


def _context(cell: Cell) -> str:
    """An out-of-hours limit's context, as `widen` keys it: ``"sunday/3"``."""
    return f"{cell[0]}/{cell[1]}"
