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
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.ml.calendar import SATURDAY, SUNDAY, TOWN, WORKDAY, TownCalendar
from shared.ml.cells import DAY_KINDS, KIND_INDEX, Ewm, EwmGrid, Features, slots_per_day
from shared.ml.periodic import PeriodicForecaster
from shared.ml.weekly import ResidualAR, WeeklyProfile, make_weekly_forecaster

# Checkpoints pickled before shared.ml.cells existed name the running mean
# `shared.ml.forecast._Ewm` (and the grid `shared.ml.forecast.EwmGrid`, imported above): both
# must stay importable from here for those to load.
_Ewm = Ewm


class Expert(Protocol):
    """One of the blend's forecasters (regressor-style: the target time is in ``x["ts"]``)."""

    def predict_one(self, x: Features) -> float: ...
    def learn_one(self, x: Features, y: float) -> None: ...


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
    # A cell per (day type, slot of the day): DAY_KINDS[i // slots_per_day], i % slots_per_day.
    cells: EwmGrid = field(init=False, repr=False)
    overall: Ewm = field(default_factory=lambda: Ewm(alpha=0.01))

    def __post_init__(self) -> None:
        self.cells = EwmGrid(len(DAY_KINDS) * slots_per_day(self.slot_minutes), self.alpha)

    def __setstate__(self, state: dict[str, Any]) -> None:
        old = state.pop("slots", None)
        self.__dict__.update(state)
        if old is not None:  # a checkpoint from before the grid: its cells, by (day type, slot)
            self.__post_init__()
            self.cells.load({self._index(kind, slot): c for (kind, slot), c in old.items()})

    def _index(self, kind: str, slot: int) -> int:
        return KIND_INDEX[kind] * slots_per_day(self.slot_minutes) + slot

    def _cell(self, ts: datetime) -> tuple[int, str, int]:
        kind, slot = self.calendar.key(ts, slot_minutes=self.slot_minutes)
        return self._index(kind, slot), kind, slot

    def predict_one(self, x: Features) -> float:
        i, day, slot = self._cell(x["ts"])
        cells = self.cells
        if cells.count(i):
            return cells.value(i)
        # Unseen cell: a Saturday first borrows from Sundays, then workdays; then the average.
        for other in {SATURDAY: (SUNDAY, WORKDAY), SUNDAY: (SATURDAY, WORKDAY)}.get(
            day, (SATURDAY, SUNDAY)
        ):
            if cells.count(j := self._index(other, slot)):
                return cells.value(j)
        return self.overall.mean

    def spread_one(self, x: Features) -> float:
        """Standard deviation of the cell (or of everything, while the cell is young)."""
        i, _, _ = self._cell(x["ts"])
        if self.cells.count(i) >= 3:
            return self.cells.std(i)
        return self.overall.std

    def learn_one(self, x: Features, y: float) -> None:
        i, _, _ = self._cell(x["ts"])
        self.cells.update(i, y)
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
class CorrectedProfile:
    """The bias-adjusted profile plus the fading remainder of its latest residual.

    An hour ahead, the last reading says most (a lecture hall that emptied early stays empty for
    the next hour); a day ahead, only the slow bias remains. The remainder decays as ``phi **
    steps``, ``phi`` being the lag-one autocorrelation of the adjusted profile's residuals, so
    the one model serves both horizons.

    Examples
    --------
    >>> import random
    >>> from datetime import datetime, timedelta, UTC
    >>> rng = random.Random(3)
    >>> f = CorrectedProfile(AdjustedProfile(SeasonalProfile(slot_minutes=60)))
    >>> t0 = datetime(2026, 1, 5, tzinfo=UTC)
    >>> noise = 0.0
    >>> for h in range(24 * 28):
    ...     noise = 0.9 * noise + rng.gauss(0, 1)
    ...     f.learn_one({"ts": t0 + timedelta(hours=h)}, 10.0 + noise)
    >>> f.learn_one({"ts": t0 + timedelta(hours=24 * 28)}, 30.0)  # a jump
    >>> soon = f.predict_one({"ts": t0 + timedelta(hours=24 * 28 + 1)})
    >>> later = f.predict_one({"ts": t0 + timedelta(hours=24 * 29)})
    >>> soon > later + 5
    True
    """

    adjusted: AdjustedProfile = field(default_factory=AdjustedProfile)
    residual: Any = None

    def __post_init__(self) -> None:
        if self.residual is None:
            self.residual = ResidualAR()

    def predict_one(self, x: Features) -> float:
        return self.adjusted.predict_one(x) + float(self.residual.predict_one(x))

    def spread_one(self, x: Features) -> float:
        return self.adjusted.spread_one(x)

    def learn_one(self, x: Features, y: float) -> None:
        self.residual.learn_one(x, y - self.adjusted.predict_one(x))
        self.adjusted.learn_one(x, y)


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

    level: Ewm = field(default_factory=lambda: Ewm(alpha=0.1))

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


def _experts(
    *, domain: str, slot_minutes: int, calendar: TownCalendar, correct: bool = True
) -> dict[str, Any]:
    """The experts a domain's forecaster blends: energy and traffic follow the week; anything
    else starts from persistence."""

    def profile() -> SeasonalProfile:
        return SeasonalProfile(slot_minutes=slot_minutes, calendar=calendar)

    if domain == "traffic":
        # A weekday-by-weekday profile plus a fading residual correction.
        return {"weekly": make_weekly_forecaster(slot_minutes=slot_minutes, calendar=calendar)}
    if domain == "weekly":
        # The weekday profile alone (the traffic service adds its own residual correction).
        return {"weekly": WeeklyProfile(slot_minutes=slot_minutes, calendar=calendar)}
    if domain == "energy":
        experts = {"profile": profile(), "adjusted": AdjustedProfile(profile())}
        if correct:
            experts["corrected"] = CorrectedProfile(AdjustedProfile(profile()))
        return experts
    return {
        "persistence": Persistence(),
        "adjusted": AdjustedProfile(profile()),
        "level": EwmLevel(),
    }


class CalendarForecaster(PeriodicForecaster):
    """What a sensor reads at a given local time: the town's calendar-aware expert blend.

    A River forecaster: ``learn_one(y, x)`` with ``x["ts"]`` the reading's aware datetime,
    ``forecast(horizon, xs)`` for the next ``horizon`` readings (at ``xs[i]["ts"]`` when given,
    else one learnt reading period apart). A reading without ``"ts"`` is taken to follow the
    previous one by that period. ``predict_one(x)`` forecasts the value at ``x["ts"]``.

    Parameters
    ----------
    domain
        ``energy`` (day-type profile: plain, bias-adjusted, and also corrected by the fading
        latest residual), ``traffic`` (weekday profile
        plus a fading residual), ``weekly`` (the weekday profile alone) or ``generic``
        (persistence, adjusted profile, smoothed level).
    slot_minutes
        Width of a slot of the local day.
    timezone
        The town's IANA time zone: local hours and days.
    country
        Whose public holidays count as Sundays (a `holidays` country code; "none" for none).
    error_alpha
        Weight of the latest error in each expert's running error (which expert is followed).
    correct
        Energy: also follow the fading remainder of the latest residual (what makes the hour
        ahead beat the last value). A detector leaves it out: a forecast that follows the last
        reading would follow a fault too, and stop seeing it.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> f = CalendarForecaster(domain="energy", slot_minutes=60)
    >>> t0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    >>> for h in range(24 * 14):
    ...     ts = t0 + timedelta(hours=h)
    ...     f.learn_one(10.0 if 8 <= ts.hour < 18 else 2.0, {"ts": ts})
    >>> [round(v) for v in f.forecast(horizon=3, xs=[{"ts": t0 + timedelta(days=14, hours=h)}
    ...                                               for h in (7, 8, 9)])]
    [2, 10, 10]
    """

    version = 1

    def __init__(
        self,
        domain: str = "generic",
        slot_minutes: int = 15,
        timezone: str = "Europe/Paris",
        country: str = "FR",
        error_alpha: float = 0.05,
        correct: bool = True,
    ) -> None:
        self.domain = domain
        self.correct = correct
        self.slot_minutes = slot_minutes
        self.timezone = timezone
        self.country = country
        self.error_alpha = error_alpha
        calendar = TownCalendar(timezone, country)
        self.blend = ExpertBlend(
            _experts(domain=domain, slot_minutes=slot_minutes, calendar=calendar, correct=correct),
            error_alpha=error_alpha,
        )
        self.last_ts: datetime | None = None
        # The shortest gap between readings: the sensor's reporting period.
        self.period: timedelta | None = None

    @property
    def experts(self) -> dict[str, Any]:
        return self.blend.experts

    def _default_step(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    def learn_one(self, y: float, x: dict[str, Any] | None = None) -> None:
        ts = self._ts(x)
        self.blend.learn_one({"ts": ts}, float(y))
        self._advance(ts)

    def predict_one(self, x: dict[str, Any]) -> float:
        return self.blend.predict_one({"ts": self._ts(x)})

    def spread_one(self, x: dict[str, Any]) -> float | None:
        return self.blend.spread_one({"ts": self._ts(x)})


def make_forecaster(
    domain: str = "generic",
    *,
    slot_minutes: int = 15,
    calendar: TownCalendar = TOWN,
    correct: bool = True,
) -> CalendarForecaster:
    """The forecaster a domain service uses, in the town's calendar."""
    return CalendarForecaster(
        domain=domain,
        slot_minutes=slot_minutes,
        timezone=calendar.timezone,
        country=calendar.country,
        correct=correct,
    )
