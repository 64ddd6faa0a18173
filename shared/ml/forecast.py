"""Online forecasters of "what this sensor usually reads now".

`SeasonalProfile` learns an exponentially weighted mean and variance per (day type, slot of day):
buildings and roads repeat weekly, with French public holidays behaving like Sundays.
`ExpertBlend` runs several forecasters and follows the one with the smallest recent error, so the
same code serves a school's meter (the profile wins) and a server's CPU in the NAB corpus
(persistence wins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.ml.calendar import SATURDAY, SUNDAY, TOWN, WORKDAY, TownCalendar

Features = dict[str, Any]


class Forecaster(Protocol):
    def predict_one(self, x: Features) -> float: ...
    def learn_one(self, x: Features, y: float) -> None: ...


@dataclass(slots=True)
class _Ewm:
    """Exponentially weighted mean and variance (West's incremental form)."""

    alpha: float
    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, y: float) -> None:
        if self.n == 0:
            self.mean, self.var = y, 0.0
        else:
            # Early on, average plainly (1/n) so the first readings don't get a tiny weight.
            a = max(self.alpha, 1.0 / (self.n + 1))
            diff = y - self.mean
            incr = a * diff
            self.mean += incr
            self.var = (1 - a) * (self.var + diff * incr)
        self.n += 1

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))


@dataclass
class SeasonalProfile:
    """Expected value per (day type, slot of day), learnt online.

    Parameters
    ----------
    slot_minutes
        Width of a slot of the day (15 for 15-minute meters; hourly data uses every 4th slot).
    alpha
        Weight of a new reading in its slot's mean: 0.2 forgets a slot's history over about
        five occurrences (a week of workdays), fast enough to follow the heating season.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> f = SeasonalProfile()
    >>> t0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    >>> for d in range(14):
    ...     for h in range(24):
    ...         ts = t0 + timedelta(days=d, hours=h)
    ...         f.learn_one({"ts": ts}, 10.0 if 8 <= h < 18 else 2.0)
    >>> round(f.predict_one({"ts": t0 + timedelta(days=14, hours=11)}), 1)
    10.0
    """

    slot_minutes: int = 15
    alpha: float = 0.2
    calendar: TownCalendar = TOWN
    slots: dict[tuple[str, int], _Ewm] = field(default_factory=dict)
    overall: _Ewm = field(default_factory=lambda: _Ewm(alpha=0.01))

    def _cell(self, ts: datetime) -> tuple[_Ewm | None, tuple[str, int]]:
        key = self.calendar.key(ts, slot_minutes=self.slot_minutes)
        return self.slots.get(key), key

    def predict_one(self, x: Features) -> float:
        cell, (day, slot) = self._cell(x["ts"])
        if cell is not None:
            return cell.mean
        # Unseen cell: a Saturday first borrows from Sundays, then workdays; then the average.
        for other in {SATURDAY: (SUNDAY, WORKDAY), SUNDAY: (SATURDAY, WORKDAY)}.get(
            day, (SATURDAY, SUNDAY)
        ):
            if (c := self.slots.get((other, slot))) is not None:
                return c.mean
        return self.overall.mean

    def spread_one(self, x: Features) -> float:
        """Standard deviation of the cell (or of everything, while the cell is young)."""
        cell, _ = self._cell(x["ts"])
        if cell is not None and cell.n >= 3:
            return cell.std
        return self.overall.std

    def learn_one(self, x: Features, y: float) -> None:
        cell, key = self._cell(x["ts"])
        if cell is None:
            cell = self.slots[key] = _Ewm(alpha=self.alpha)
        cell.update(y)
        self.overall.update(y)


@dataclass
class AdjustedProfile:
    """The profile plus its recent bias: follows a cold spell or a warm week within hours.

    Parameters
    ----------
    bias_alpha
        Weight of the latest residual in the bias: 0.1 follows a shift within about ten
        readings (2.5 hours of 15-minute readings).
    """

    profile: SeasonalProfile = field(default_factory=SeasonalProfile)
    bias_alpha: float = 0.1
    bias: float = 0.0

    def predict_one(self, x: Features) -> float:
        return self.profile.predict_one(x) + self.bias

    def spread_one(self, x: Features) -> float:
        return self.profile.spread_one(x)

    def learn_one(self, x: Features, y: float) -> None:
        residual = y - self.profile.predict_one(x)
        self.bias += self.bias_alpha * (residual - self.bias)
        self.profile.learn_one(x, y)


@dataclass
class Persistence:
    """The last value seen: hard to beat for minutes-ahead on smooth series."""

    last: float | None = None

    def predict_one(self, x: Features) -> float:
        return 0.0 if self.last is None else self.last

    def learn_one(self, x: Features, y: float) -> None:
        self.last = y


@dataclass
class EwmLevel:
    """A smoothed level: robust to single-reading noise."""

    level: _Ewm = field(default_factory=lambda: _Ewm(alpha=0.1))

    def predict_one(self, x: Features) -> float:
        return self.level.mean

    def learn_one(self, x: Features, y: float) -> None:
        self.level.update(y)


@dataclass
class ExpertBlend:
    """Follows the expert with the smallest recent absolute error.

    Parameters
    ----------
    experts
        Named forecasters, all learning from every reading.
    error_alpha
        Weight of the latest error in each expert's running error: 0.05 remembers about the last
        twenty readings, long enough not to switch on a fluke.
    """

    experts: dict[str, Any]
    error_alpha: float = 0.05
    errors: dict[str, float] = field(default_factory=dict)

    def best(self) -> str:
        if not self.errors:
            return next(iter(self.experts))
        return min(self.experts, key=lambda k: self.errors.get(k, math.inf))

    def predict_one(self, x: Features) -> float:
        return float(self.experts[self.best()].predict_one(x))

    def spread_one(self, x: Features) -> float | None:
        """The followed expert's own idea of its spread here, if it has one."""
        spread = getattr(self.experts[self.best()], "spread_one", None)
        return float(spread(x)) if spread is not None else None

    def learn_one(self, x: Features, y: float) -> None:
        for name, expert in self.experts.items():
            err = abs(y - expert.predict_one(x))
            prev = self.errors.get(name)
            self.errors[name] = err if prev is None else prev + self.error_alpha * (err - prev)
            expert.learn_one(x, y)


def make_forecaster(
    domain: str = "generic", *, slot_minutes: int = 15, calendar: TownCalendar = TOWN
) -> ExpertBlend:
    """The forecaster a domain service uses.

    Energy and traffic follow the week; anything else starts from persistence.
    """

    def profile() -> SeasonalProfile:
        return SeasonalProfile(slot_minutes=slot_minutes, calendar=calendar)

    if domain == "traffic":
        # What the traffic service runs: a weekday-by-weekday profile plus a fading residual
        # correction. Imported here: shared.ml.weekly builds on this module.
        from shared.ml.weekly import make_weekly_forecaster

        weekly = make_weekly_forecaster(slot_minutes=slot_minutes, calendar=calendar)
        return ExpertBlend({"weekly": weekly})
    if domain == "energy":
        return ExpertBlend({"profile": profile(), "adjusted": AdjustedProfile(profile())})
    return ExpertBlend(
        {"persistence": Persistence(), "adjusted": AdjustedProfile(profile()), "level": EwmLevel()}
    )
