"""Week-shaped forecasters: a profile by weekday and slot of the day, and a fading correction.

`SeasonalProfile` (in `shared.ml.forecast`) pools the five workdays into one day type, which is
right for a building. Waste bins and roads also have weekday habits of their own (a Wednesday
market, Friday-evening departures), so `WeeklyProfile` keeps a cell per (weekday, slot) and
shrinks it towards the pooled day-type cell while it has seen few weeks. `ResidualAR` learns how
long a deviation from the profile lasts (an AR(1) on the residuals), and `ProfileWithResidual`
adds that fading correction to a profile: right after a reading, the forecast leans towards what
was just seen, an hour later hardly at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from shared.ml.calendar import SATURDAY, SUNDAY, TOWN, WORKDAY, TownCalendar
from shared.ml.cells import KIND_INDEX, Ewm, EwmGrid, Features, slots_per_day

HOLIDAY = 7  # the "weekday" of a French public holiday


def week_slot(ts: datetime, *, slot_minutes: int, calendar: TownCalendar = TOWN) -> tuple[int, int]:
    """(weekday 0-6, or 7 on a public holiday; slot of the local day).

    >>> from shared.ml.calendar import PARIS
    >>> week_slot(datetime(2026, 3, 4, 9, 40, tzinfo=PARIS), slot_minutes=60)
    (2, 9)
    >>> week_slot(datetime(2026, 5, 1, 9, 40, tzinfo=PARIS), slot_minutes=60)
    (7, 9)
    """
    local = ts.astimezone(calendar.tz)
    day = HOLIDAY if calendar.is_holiday(local.date()) else local.weekday()
    return day, (local.hour * 60 + local.minute) // slot_minutes


@lru_cache(maxsize=1 << 17)
def _slot_keys(
    index: int, slot_minutes: int, calendar: TownCalendar = TOWN
) -> tuple[tuple[int, int], tuple[str, int]]:
    # Devices of a town share their clock: every bin asks for the same few thousand slots, so
    # the time-zone and holiday look-ups are done once per slot, not once per device.
    ts = datetime.fromtimestamp(index * slot_minutes * 60, UTC)
    day, slot = week_slot(ts, slot_minutes=slot_minutes, calendar=calendar)
    return (day, slot), (calendar.day_type(ts), slot)


def slot_keys(
    ts: datetime, *, slot_minutes: int, calendar: TownCalendar = TOWN
) -> tuple[tuple[int, int], tuple[str, int]]:
    """(weekday-or-holiday, slot) and (day type, slot) of `ts`.

    >>> from shared.ml.calendar import PARIS
    >>> slot_keys(datetime(2026, 3, 7, 9, 40, tzinfo=PARIS), slot_minutes=60)
    ((5, 9), ('saturday', 9))
    """
    if 60 % slot_minutes:  # slots not aligned on local hours: no shared cache
        day, slot = week_slot(ts, slot_minutes=slot_minutes, calendar=calendar)
        return (day, slot), (calendar.day_type(ts), slot)
    return _slot_keys(int(ts.timestamp()) // (slot_minutes * 60), slot_minutes, calendar)


@dataclass
class WeeklyProfile:
    """Expected value per (weekday, slot of the day), learnt online.

    Parameters
    ----------
    slot_minutes
        Width of a slot (60 for hourly fill rates, 15 for 15-minute traffic counts).
    alpha
        Weight of a new value in its cell once the cell has seen more than 1/alpha values
        (before that, cells average plainly): 0.1 remembers about ten weeks.
    shrink_weeks
        Values at which a weekday's own cell weighs as much as its day type's pooled cell
        (workday, Saturday, Sunday-or-holiday): 3 trusts a Wednesday's own habit after about
        three Wednesdays.

    Examples
    --------
    >>> from datetime import UTC
    >>> p = WeeklyProfile(slot_minutes=60)
    >>> t0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    >>> for d in range(28):
    ...     for h in range(24):
    ...         ts = t0 + timedelta(days=d, hours=h)
    ...         market = ts.weekday() == 2 and 7 <= h < 12
    ...         p.learn_one({"ts": ts}, 5.0 if market else 1.0)
    >>> wed, thu = t0 + timedelta(days=30, hours=9), t0 + timedelta(days=31, hours=9)
    >>> p.predict_one({"ts": wed}) > 3.0 > 1.5 > p.predict_one({"ts": thu})
    True
    """

    slot_minutes: int = 60
    alpha: float = 0.1
    shrink_weeks: float = 3.0
    calendar: TownCalendar = TOWN
    # A cell per (weekday or HOLIDAY, slot of the day): index day * slots_per_day + slot; a
    # pooled cell per (day type, slot): KIND_INDEX[kind] * slots_per_day + slot.
    cells: EwmGrid = field(init=False, repr=False)
    pooled: EwmGrid = field(init=False, repr=False)
    overall: Ewm = field(default_factory=lambda: Ewm(alpha=0.01))

    def __post_init__(self) -> None:
        per_day = slots_per_day(self.slot_minutes)
        self.cells = EwmGrid((HOLIDAY + 1) * per_day, self.alpha)
        self.pooled = EwmGrid(len(KIND_INDEX) * per_day, self.alpha)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        cells, pooled = state["cells"], state["pooled"]
        if isinstance(cells, dict):  # a checkpoint from before the grids: cells by their keys
            self.__post_init__()
            self.cells.load({self._indices(k, (WORKDAY, 0))[0]: c for k, c in cells.items()})
            self.pooled.load({self._indices((0, 0), k)[1]: c for k, c in pooled.items()})

    def _keys(self, ts: datetime) -> tuple[tuple[int, int], tuple[str, int]]:
        return slot_keys(ts, slot_minutes=self.slot_minutes, calendar=self.calendar)

    def _indices(self, own_key: tuple[int, int], pooled_key: tuple[str, int]) -> tuple[int, int]:
        per_day = slots_per_day(self.slot_minutes)
        return (
            own_key[0] * per_day + own_key[1],
            KIND_INDEX[pooled_key[0]] * per_day + pooled_key[1],
        )

    def _blend_keys(
        self, own_key: tuple[int, int], pooled_key: tuple[str, int]
    ) -> tuple[float, float] | None:
        """(mean, std) of the weekday cell shrunk towards its day type's, or None if unseen."""
        kind, slot = pooled_key
        i, j = self._indices(own_key, pooled_key)
        pooled = self.pooled
        if not pooled.count(j):
            # An unseen day type borrows the same slot of another (Saturday from Sunday first).
            others = {SATURDAY: (SUNDAY, WORKDAY), SUNDAY: (SATURDAY, WORKDAY)}
            for other in others.get(kind, (SATURDAY, SUNDAY)):
                if pooled.count(j := self._indices(own_key, (other, slot))[1]):
                    break
            else:
                return None
        own = self.cells
        if not (n := own.count(i)):
            return pooled.value(j), pooled.std(j)
        w = n / (n + self.shrink_weeks)
        return (
            w * own.value(i) + (1 - w) * pooled.value(j),
            w * own.std(i) + (1 - w) * pooled.std(j),
        )

    def table(self) -> list[list[float | None]]:
        """Expected value per weekday (Monday first; public holidays aside) and slot."""
        slots = 24 * 60 // self.slot_minutes
        kinds = [WORKDAY] * 5 + [SATURDAY, SUNDAY]
        out: list[list[float | None]] = []
        for day in range(7):
            row = []
            for slot in range(slots):
                blend = self._blend_keys((day, slot), (kinds[day], slot))
                row.append(None if blend is None else blend[0])
            out.append(row)
        return out

    def predict_one(self, x: Features) -> float:
        # The hot path (a bin integrates its rate over days): means only, no blend of spreads.
        own_key, pooled_key = self._keys(x["ts"])
        return self._mean(own_key, pooled_key)

    def _mean(self, own_key: tuple[int, int], pooled_key: tuple[str, int]) -> float:
        i, j = self._indices(own_key, pooled_key)
        pooled, own = self.pooled, self.cells
        if not pooled.count(j):
            blend = self._blend_keys(own_key, pooled_key)
            return self.overall.mean if blend is None else blend[0]
        if not (n := own.count(i)):
            return pooled.value(j)
        w = n / (n + self.shrink_weeks)
        return w * own.value(i) + (1 - w) * pooled.value(j)

    def predict_range(self, start: datetime, count: int) -> list[float]:
        """Predictions for `count` consecutive slots, the first being the one holding `start`.

        Same values as `predict_one` slot by slot, without a datetime per slot (a bin
        integrates its fill rate a week ahead every hour).

        >>> from datetime import UTC
        >>> p = WeeklyProfile(slot_minutes=60)
        >>> t0 = datetime(2026, 3, 2, tzinfo=UTC)
        >>> for h in range(48):
        ...     p.learn_one({"ts": t0 + timedelta(hours=h)}, float(h % 24))
        >>> t = t0 + timedelta(days=7, hours=5, minutes=10)
        >>> one_by_one = [p.predict_one({"ts": t + timedelta(hours=i)}) for i in range(3)]
        >>> p.predict_range(t, 3) == one_by_one
        True
        """
        return list(self.iter_range(start, count))

    def iter_range(self, start: datetime, count: int) -> Iterator[float]:
        """`predict_range`, lazily: a caller that finds what it wants early stops there."""
        if 60 % self.slot_minutes:
            step = timedelta(minutes=self.slot_minutes)
            yield from (self.predict_one({"ts": start + i * step}) for i in range(count))
            return
        first = int(start.timestamp()) // (self.slot_minutes * 60)
        for index in range(first, first + count):
            yield self._mean(*_slot_keys(index, self.slot_minutes, self.calendar))

    def spread_one(self, x: Features) -> float:
        """Standard deviation of the cell (of everything while the cell is young)."""
        own_key, pooled_key = self._keys(x["ts"])
        blend = self._blend_keys(own_key, pooled_key)
        if blend is None or self.cells.count(self._indices(own_key, pooled_key)[0]) < 3:
            return self.overall.std
        return blend[1]

    def learn_one(self, x: Features, y: float) -> None:
        i, j = self._indices(*self._keys(x["ts"]))
        self.cells.update(i, y)
        self.pooled.update(j, y)
        self.overall.update(y)


@dataclass
class ResidualAR:
    """How long a deviation lasts: an online AR(1) fit of residuals, and its fading correction.

    The correction `horizon` after the last residual r is `phi ** steps * r`, with `phi` the
    lag-one autocorrelation of the residuals and `steps` the horizon in reporting periods.
    Noise that does not persist (phi ~ 0) gives no correction at all.

    Parameters
    ----------
    alpha
        Weight of a new product in the running moments: 0.01, about the last 100 readings.

    Examples
    --------
    >>> from datetime import UTC
    >>> import random
    >>> rng, ar = random.Random(1), ResidualAR()
    >>> t0 = datetime(2026, 3, 2, tzinfo=UTC)
    >>> r = 0.0
    >>> for i in range(500):
    ...     r = 0.9 * r + rng.gauss(0, 1)
    ...     ar.learn_one({"ts": t0 + timedelta(minutes=15 * i)}, r)
    >>> 0.7 < ar.phi < 1.0
    True
    >>> ar.learn_one({"ts": t0 + timedelta(minutes=15 * 500)}, 10.0)
    >>> soon = ar.predict_one({"ts": t0 + timedelta(minutes=15 * 501)})
    >>> later = ar.predict_one({"ts": t0 + timedelta(minutes=15 * 504)})
    >>> 10.0 > soon > later > 0.0
    True
    """

    alpha: float = 0.01
    last: float | None = None
    last_ts: datetime | None = None
    period: timedelta | None = None
    cross: Ewm = field(default_factory=lambda: Ewm(alpha=0.01))
    square: Ewm = field(default_factory=lambda: Ewm(alpha=0.01))

    def __post_init__(self) -> None:
        self.cross.alpha = self.square.alpha = self.alpha

    @property
    def phi(self) -> float:
        if self.square.n < 10 or self.square.mean <= 0:
            return 0.0
        # Clamped: a negative fit is noise, and phi near 1 would never let a deviation go.
        return min(0.95, max(0.0, self.cross.mean / self.square.mean))

    def predict_one(self, x: Features) -> float:
        if self.last is None or self.last_ts is None or self.period is None:
            return 0.0
        steps = max(1.0, (x["ts"] - self.last_ts) / self.period)
        return float(self.phi**steps * self.last)

    def learn_one(self, x: Features, y: float) -> None:
        ts: datetime = x["ts"]
        if self.last is not None and self.last_ts is not None and ts > self.last_ts:
            gap = ts - self.last_ts
            self.period = gap if self.period is None else min(self.period, gap)
            # Only consecutive readings tell the lag-one correlation.
            if gap <= 1.5 * self.period:
                self.cross.update(self.last * y)
                self.square.update(self.last * self.last)
        self.last, self.last_ts = y, ts


@dataclass
class ProfileWithResidual:
    """A `WeeklyProfile` plus the fading correction of its latest residual.

    Examples
    --------
    >>> from datetime import UTC
    >>> f = make_weekly_forecaster("traffic")
    >>> t0 = datetime(2026, 3, 2, tzinfo=UTC)
    >>> for i in range(96 * 14):
    ...     ts = t0 + timedelta(minutes=15 * i)
    ...     f.learn_one({"ts": ts}, 100.0 if 7 <= ts.hour < 9 else 20.0)
    >>> round(f.predict_one({"ts": t0 + timedelta(days=14, hours=8)}))
    100
    """

    profile: WeeklyProfile = field(default_factory=WeeklyProfile)
    residual: ResidualAR = field(default_factory=ResidualAR)

    def predict_one(self, x: Features) -> float:
        return self.profile.predict_one(x) + self.residual.predict_one(x)

    def spread_one(self, x: Features) -> float:
        return self.profile.spread_one(x)

    def learn_one(self, x: Features, y: float) -> None:
        self.residual.learn_one(x, y - self.profile.predict_one(x))
        self.profile.learn_one(x, y)


def make_weekly_forecaster(
    domain: str = "traffic", *, slot_minutes: int = 15, calendar: TownCalendar = TOWN
) -> ProfileWithResidual:
    """The traffic service's flow forecaster (`domain` is accepted for the benchmarks' loader).

    Hourly data works with the default 15-minute slots: it fills every fourth slot.
    """
    return ProfileWithResidual(WeeklyProfile(slot_minutes=slot_minutes, calendar=calendar))
