"""A building's consumption a day ahead: two profiles averaged, outdoor temperature where known.

`DayAheadForecaster` is what the energy service stores as its 24 h forecasts (BENCHMARKS.md,
"Forecast quality: building energy"; `make_forecaster` is the service's default model). Its
long-horizon forecast averages two profiles that err differently: the bias-adjusted day-type
profile (`AdjustedProfile`, workdays pooled, follows a cold spell within hours) and the weekday
profile (`WeeklyProfile`, a Monday's own habits, shrunk towards its day type while young). On
top of that:

- `TemperatureResponse`: where readings come with the outdoor temperature (``x["temperature_c"]``
  at learning time, what was observed then), how much the load's deviation from that average
  follows the temperature's deviation from what the profile's cells saw. A forecast uses a
  temperature given for the target time (a weather forecast), or else, honestly, the
  temperature observed at the same hour the day before (persistence): nothing the model has not
  been told by the time it forecasts.
- `ResidualAR`: the fading remainder of the latest residual, so the hour ahead still leans on
  what was just read.

Without any temperature, the temperature part says nothing: the forecast is the averaged
profiles plus the fading residual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.ml.calendar import TOWN, TownCalendar
from shared.ml.cells import Ewm, Features
from shared.ml.forecast import AdjustedProfile, CalendarForecaster, SeasonalProfile
from shared.ml.forecast import make_forecaster as calendar_forecaster
from shared.ml.periodic import PeriodicForecaster
from shared.ml.weekly import ResidualAR, WeeklyProfile

TEMPERATURE = "temperature_c"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass
class TemperatureResponse:
    """How far a load's deviation follows the outdoor temperature's, learnt online.

    The slope is the regression through the origin of the load's residual on the temperature's
    deviation from its own profile (the temperature the load profile's cells remember, same day
    type and hour), both recent: a building heats in winter and cools in summer, so the slope
    is local in time, not one curve for the year.

    Parameters
    ----------
    alpha
        Weight of a new product in the running moments: 0.005, about the last 200 hours (eight
        days): long enough for a slope, short enough to follow the season.
    min_hours
        Pairs seen before the slope is used.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> r = TemperatureResponse()
    >>> t0 = datetime(2026, 1, 5, tzinfo=UTC)
    >>> for h in range(24 * 21):
    ...     ts = t0 + timedelta(hours=h)
    ...     temp = 5.0 + 4.0 * ((h // 24) % 3 - 1)  # a cold, a mild and a warm day in turn
    ...     r.learn_one({"ts": ts, "temperature_c": temp}, residual=-2.0 * (temp - 5.0))
    >>> -2.5 < r.slope < -1.0  # the load falls as it gets warmer
    True
    >>> ts = t0 + timedelta(days=21, hours=10)
    >>> warm, cold = ({"ts": ts, "temperature_c": t} for t in (12.0, 0.0))
    >>> r.predict_one(warm) < 0 < r.predict_one(cold)
    True
    >>> r.temperature({"ts": ts})  # none given: the one observed at 10:00 the day before
    9.0
    """

    alpha: float = 0.005
    min_hours: int = 48
    # The temperature a load profile's cells have seen, by day type and hour.
    profile: SeasonalProfile = field(default_factory=lambda: SeasonalProfile(slot_minutes=60))
    cross: Ewm = field(default_factory=lambda: Ewm(alpha=0.005))
    square: Ewm = field(default_factory=lambda: Ewm(alpha=0.005))
    # The last two days' observed temperatures, by hour (UTC epoch hours): the persistence
    # forecast.
    recent: dict[int, float] = field(default_factory=dict)
    last_hour: int | None = None

    def __post_init__(self) -> None:
        self.cross.alpha = self.square.alpha = self.alpha

    @property
    def slope(self) -> float:
        if self.square.n < self.min_hours or self.square.mean <= 0:
            return 0.0
        return self.cross.mean / self.square.mean

    @property
    def known(self) -> bool:
        """Whether a temperature has ever been seen (else the response says nothing)."""
        return self.last_hour is not None

    def temperature(self, x: Features) -> float | None:
        """The temperature at ``x["ts"]``: the one given, else yesterday's at that hour."""
        given = x.get(TEMPERATURE)
        if given is not None:
            return float(given)
        if self.last_hour is None:
            return None
        hour = _hour(x["ts"]) - 24
        while hour > self.last_hour:  # more than a day ahead: the latest day observed
            hour -= 24
        return self.recent.get(hour)

    def predict_one(self, x: Features) -> float:
        """The load's expected deviation at ``x["ts"]`` for its (given or persisted)
        temperature; 0.0 without one or before the slope is learnt."""
        slope = self.slope
        if not slope:
            return 0.0
        temp = self.temperature(x)
        if temp is None or not self._seen(x):
            return 0.0
        return slope * (temp - self.profile.predict_one(x))

    def _seen(self, x: Features) -> bool:
        i, _, _ = self.profile._cell(x["ts"])
        return self.profile.cells.count(i) > 0

    def learn_one(self, x: Features, *, residual: float) -> None:
        """One observed temperature (``x["temperature_c"]``) and the load's residual then."""
        temp = x.get(TEMPERATURE)
        if temp is None:
            return
        temp = float(temp)
        if self._seen(x):
            dev = temp - self.profile.predict_one(x)
            self.cross.update(residual * dev)
            self.square.update(dev * dev)
        self.profile.learn_one(x, temp)
        hour = _hour(x["ts"])
        self.recent[hour] = temp
        if self.last_hour is None or hour > self.last_hour:
            self.last_hour = hour
            for old in [h for h in self.recent if h <= hour - 48]:
                del self.recent[old]


def _hour(ts: datetime) -> int:
    return int(ts.astimezone(UTC).timestamp() // 3600)


class DayAheadForecaster(PeriodicForecaster):
    """A building's consumption at a given time: the energy service's forecaster.

    A River forecaster like `shared.ml.forecast.CalendarForecaster`: ``learn_one(y, x)`` with
    ``x["ts"]`` the reading's aware datetime and, where the town has it, ``x["temperature_c"]``
    the outdoor temperature observed then; ``predict_one(x)`` the value at ``x["ts"]`` (with
    ``x["temperature_c"]`` a forecast of it, if one is known; else yesterday's at that hour).

    Parameters
    ----------
    slot_minutes
        Width of a slot of the local day in the profiles.
    timezone
        The town's IANA time zone.
    country
        Whose public holidays count as Sundays (a `holidays` country code; "none" for none).
    weekly_weight
        Weight of the weekday profile in the average: 0.5, the plain mean of the two.
    correct
        Add the fading remainder of the latest residual (the hour ahead).

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> f = DayAheadForecaster(slot_minutes=60)
    >>> t0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    >>> for h in range(24 * 14):
    ...     ts = t0 + timedelta(hours=h)
    ...     f.learn_one(10.0 if 8 <= ts.hour < 18 else 2.0, {"ts": ts, "temperature_c": 5.0})
    >>> [round(v) for v in f.forecast(horizon=3, xs=[{"ts": t0 + timedelta(days=14, hours=h)}
    ...                                               for h in (7, 8, 9)])]
    [2, 10, 10]
    """

    version = 1
    # The energy service tells it the outdoor temperature where the town has a source.
    uses_temperature = True

    def __init__(
        self,
        slot_minutes: int = 15,
        timezone: str = "Europe/Paris",
        country: str = "FR",
        weekly_weight: float = 0.5,
        correct: bool = True,
    ) -> None:
        self.slot_minutes = slot_minutes
        self.timezone = timezone
        self.country = country
        self.weekly_weight = weekly_weight
        self.correct = correct
        calendar = TownCalendar(timezone, country)
        self.adjusted = AdjustedProfile(
            SeasonalProfile(slot_minutes=slot_minutes, calendar=calendar)
        )
        # The same memory as the day-type profile's cells (alpha 0.2).
        self.weekly = WeeklyProfile(slot_minutes=slot_minutes, alpha=0.2, calendar=calendar)
        self.temperature = TemperatureResponse(
            profile=SeasonalProfile(slot_minutes=60, calendar=calendar)
        )
        self.residual = ResidualAR()
        self.last_ts: datetime | None = None
        self.period: timedelta | None = None

    def _default_step(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    def _profiles(self, x: Features) -> float:
        w = self.weekly_weight
        return (1 - w) * self.adjusted.predict_one(x) + w * self.weekly.predict_one(x)

    def _fade(self, ts: datetime) -> float:
        """How much of the latest residual is left at ``ts`` (phi ** steps ahead)."""
        if not self.correct or self.last_ts is None:
            return 0.0
        steps = max(1.0, (ts - self.last_ts) / self._step())
        return float(self.residual.phi**steps)

    def predict_one(self, x: dict[str, Any]) -> float:
        ts = self._ts(x)
        q = {"ts": ts}
        if (temp := x.get(TEMPERATURE)) is not None:
            q[TEMPERATURE] = temp
        base = self._profiles(q)
        if not self.correct:
            return base + self.temperature.predict_one(q)
        # What the latest residual says fades as the temperature's part grows: an hour ahead,
        # the last reading already holds today's weather.
        fade = self._fade(ts)
        return (
            base
            + (1 - fade) * self.temperature.predict_one(q)
            + float(self.residual.predict_one(q))
        )

    def spread_one(self, x: dict[str, Any]) -> float:
        return self.adjusted.spread_one({"ts": self._ts(x)})

    def learn_one(self, y: float, x: dict[str, Any] | None = None) -> None:
        ts = self._ts(x)
        y = float(y)
        q: Features = {"ts": ts}
        residual = y - self._profiles(q)
        self.residual.learn_one(q, residual)
        if x is not None and (temp := x.get(TEMPERATURE)) is not None:
            self.temperature.learn_one({"ts": ts, TEMPERATURE: temp}, residual=residual)
        self.adjusted.learn_one(q, y)
        self.weekly.learn_one(q, y)
        self._advance(ts)


def make_forecaster(
    domain: str = "generic",
    *,
    slot_minutes: int = 15,
    calendar: TownCalendar = TOWN,
    correct: bool = True,
) -> DayAheadForecaster | CalendarForecaster:
    """The forecaster a domain service stores its forecasts from, in the town's calendar.

    Energy's forecasts (``correct``) come from `DayAheadForecaster`; its detector's expected
    value (``correct=False``), which its alert thresholds were set on, and every other domain's
    model stay `shared.ml.forecast.make_forecaster`'s.
    """
    if domain == "energy" and correct:
        return DayAheadForecaster(
            slot_minutes=slot_minutes, timezone=calendar.timezone, country=calendar.country
        )
    return calendar_forecaster(
        domain, slot_minutes=slot_minutes, calendar=calendar, correct=correct
    )
