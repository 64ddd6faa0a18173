"""Waste bins: filling with human activity, emptying on collection rounds, temperature."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import cache

from townpulse.simulator import noise
from townpulse.simulator.calendar_fr import (
    DayType,
    day_type,
    is_public_holiday,
    local_hour,
    to_local,
    utc_at_local,
)
from townpulse.simulator.profiles import interp_daily, window
from townpulse.simulator.town import BinSpec, Zone

FULL_PCT = 100.0
# What the truck leaves behind: a few bags stuck at the bottom.
RESIDUAL_PCT = (0.5, 4.0)
SENSOR_NOISE_PCT = 1.5
TEMP_NOISE_C = 0.3
MARKET_BOOST = 5.0
# One week is not the next (visitors, parties, holidays): each bin's week is this much busier
# or quieter (standard deviation), which is what overflows a container sized for the average.
# An assumption, not a published figure (docs/waste.md, "Simulated town").
WEEK_SPREAD = 0.1
# An extra market (event `market_day`) brings its stallholders' cartons and crates to the market
# square's containers whatever their ordinary pace: at least this many points an hour (a
# market morning fills them).
MARKET_DAY_MIN_PCT_PER_H = 10.0
FAST_FILL_FACTOR = 8.0
FAST_FILL_MIN_PCT_PER_STEP = 3.0
FIRE_RISE_C = (30.0, 30.0)  # immediate jump, then further rise over FIRE_RAMP
FIRE_RAMP = timedelta(minutes=45)
WEEKLY_MARKET_WEEKDAY = 5  # Saturday morning
WEEKLY_MARKET_HOURS = (7.0, 13.5)

# People out shopping and working, by hour of the day (the centre and the market square).
_SHOPS_AND_OFFICES = (
    0.1,
    0.05,
    0.05,
    0.05,
    0.05,
    0.05,
    0.1,
    0.3,
    0.8,
    1.2,
    1.4,
    1.5,
    1.6,
    1.5,
    1.3,
    1.3,
    1.4,
    1.5,
    1.5,
    1.2,
    0.8,
    0.5,
    0.3,
    0.2,
    0.1,
)

_ACTIVITY: dict[Zone, tuple[float, ...]] = {
    Zone.RESIDENTIAL: (
        0.1,
        0.05,
        0.05,
        0.05,
        0.05,
        0.1,
        0.4,
        1.2,
        1.3,
        0.8,
        0.7,
        0.7,
        0.8,
        0.8,
        0.7,
        0.7,
        0.8,
        1.0,
        1.4,
        1.6,
        1.5,
        1.2,
        0.6,
        0.3,
        0.1,
    ),
    Zone.CENTRE: _SHOPS_AND_OFFICES,
    # The market square is a centre street six days a week; market days add MARKET_BOOST.
    Zone.MARKET: _SHOPS_AND_OFFICES,
    Zone.TOURIST: (
        0.2,
        0.1,
        0.05,
        0.05,
        0.05,
        0.05,
        0.05,
        0.1,
        0.3,
        0.6,
        1.0,
        1.4,
        1.7,
        1.8,
        1.8,
        1.8,
        1.7,
        1.6,
        1.5,
        1.4,
        1.2,
        1.0,
        0.8,
        0.5,
        0.2,
    ),
}
_DAY_FACTOR: dict[Zone, dict[DayType, float]] = {
    Zone.RESIDENTIAL: {DayType.WORKDAY: 1.0, DayType.SATURDAY: 1.15, DayType.SUNDAY: 1.2},
    Zone.CENTRE: {DayType.WORKDAY: 1.0, DayType.SATURDAY: 1.3, DayType.SUNDAY: 0.7},
    Zone.MARKET: {DayType.WORKDAY: 1.0, DayType.SATURDAY: 1.3, DayType.SUNDAY: 0.7},
    Zone.TOURIST: {DayType.WORKDAY: 0.8, DayType.SATURDAY: 1.6, DayType.SUNDAY: 1.8},
}


@cache
def _mean_activity(zone: Zone) -> float:
    knots = _ACTIVITY[zone]
    return (sum(knots[1:-1]) + (knots[0] + knots[-1]) / 2) / 24.0


def activity(zone: Zone, hour: float) -> float:
    """Relative rate of deposits at local `hour`; averages 1 over a day.

    >>> activity(Zone.RESIDENTIAL, 3.0) < 0.2 < 1.0 < activity(Zone.RESIDENTIAL, 19.0)
    True
    """
    return interp_daily(_ACTIVITY[zone], hour) / _mean_activity(zone)


def is_weekly_market(day: date, hour: float) -> bool:
    """Whether the weekly market is on (Saturday morning, Place du Marché).

    >>> is_weekly_market(date(2026, 3, 7), 9.0), is_weekly_market(date(2026, 3, 7), 15.0)
    (True, False)
    """
    start, end = WEEKLY_MARKET_HOURS
    return day.weekday() == WEEKLY_MARKET_WEEKDAY and start <= hour < end


def fill_rate(spec: BinSpec, *, ts: datetime, step: timedelta, market_day: bool = False) -> float:
    """Expected fill increase (percentage points) over the interval ending at `ts`.

    Parameters
    ----------
    spec
        The bin.
    ts
        End of the interval.
    step
        Interval length.
    market_day
        An extra market is held (event `market_day`); boosts market and centre bins.

    Examples
    --------
    >>> from datetime import UTC
    >>> spec = BinSpec(Zone.RESIDENTIAL, "general", 240, 2.0, (0,), 6.0)
    >>> day = sum(fill_rate(spec, ts=datetime(2026, 3, 3, tzinfo=UTC) + timedelta(minutes=m),
    ...                     step=timedelta(minutes=15)) for m in range(0, 1440, 15))
    >>> 45 < day < 55  # half full after one of its two days
    True
    """
    local = to_local(ts - step / 2)
    hour = local_hour(local)
    steps_per_day = timedelta(days=1) / step
    rate = FULL_PCT / (spec.fill_days * steps_per_day) * activity(spec.zone, hour)
    rate *= _DAY_FACTOR[spec.zone][day_type(local.date())]
    if spec.zone is Zone.TOURIST and local.month in (6, 7, 8):
        rate *= 1.6
    market = market_day or is_weekly_market(local.date(), hour)
    if market and spec.zone in (Zone.MARKET, Zone.CENTRE):
        rate *= MARKET_BOOST if spec.zone is Zone.MARKET else 1.5
    if market_day and spec.zone is Zone.MARKET:
        rate = max(rate, MARKET_DAY_MIN_PCT_PER_H * step / timedelta(hours=1))
    return rate


def is_collected(spec: BinSpec, *, ts: datetime, step: timedelta) -> bool:
    """Whether the collection round empties the bin during (ts - step, ts].

    Rounds are skipped on public holidays (the bin keeps filling until the next one).
    """
    local_day = to_local(ts).date()
    for day in (local_day - timedelta(days=1), local_day):
        when = utc_at_local(day, spec.collection_hour)
        if ts - step < when <= ts:
            return day.weekday() in spec.collection_weekdays and not is_public_holiday(day)
    return False


def last_collection(spec: BinSpec, *, before: datetime) -> datetime | None:
    """Most recent collection instant at or before `before`, looking back at most 15 days."""
    day = to_local(before).date()
    for back in range(16):
        candidate = day - timedelta(days=back)
        when = utc_at_local(candidate, spec.collection_hour)
        if (
            when <= before
            and candidate.weekday() in spec.collection_weekdays
            and not is_public_holiday(candidate)
        ):
            return when
    return None


def residual_pct(key: Sequence[object], ts: datetime) -> float:
    """Fill level left right after a collection."""
    low, high = RESIDUAL_PCT
    return low + (high - low) * noise.uniform(*key, "residual", int(ts.timestamp()))


def initial_fill(spec: BinSpec, *, key: Sequence[object], ts: datetime) -> float:
    """Plausible fill level at `ts` when the simulation starts with no history.

    Assumes ordinary filling since the last collection, so a simulator restarted at any time
    starts from a level consistent with the collection calendar.
    """
    since = last_collection(spec, before=ts)
    if since is None:
        return FULL_PCT
    days = (ts - since).total_seconds() / 86_400.0
    return min(FULL_PCT, residual_pct(key, since) + FULL_PCT * days / spec.fill_days)


def next_fill(
    spec: BinSpec,
    fill: float,
    *,
    key: Sequence[object],
    ts: datetime,
    step: timedelta,
    market_day: bool = False,
    fast_fill: bool = False,
) -> float:
    """True fill level at `ts` given the level one step earlier.

    >>> from datetime import UTC
    >>> spec = BinSpec(Zone.RESIDENTIAL, "general", 240, 2.0, (0, 1, 2, 3, 4, 5), 6.0)
    >>> ts = datetime(2026, 3, 3, 5, 0, tzinfo=UTC)  # 06:00 in Paris, a Tuesday
    >>> next_fill(spec, 80.0, key=(1, "b"), ts=ts, step=timedelta(minutes=15)) < 5.0
    True
    """
    epoch = int(ts.timestamp())
    if is_collected(spec, ts=ts, step=step):
        fill = residual_pct(key, ts)
    increment = fill_rate(spec, ts=ts, step=step, market_day=market_day)
    # Deposits come in bags, not as a steady trickle.
    increment *= max(0.0, 1.0 + 0.6 * noise.gauss(*key, "deposit", epoch))
    increment *= week_factor(key, ts)
    if fast_fill:
        increment = max(increment * FAST_FILL_FACTOR, FAST_FILL_MIN_PCT_PER_STEP)
    return min(FULL_PCT, fill + increment)


def week_factor(key: Sequence[object], ts: datetime) -> float:
    """How much busier than usual this bin's (ISO) week is: about 1, never below a half.

    >>> from datetime import UTC
    >>> monday, sunday = datetime(2026, 3, 2, 12, tzinfo=UTC), datetime(2026, 3, 8, 12, tzinfo=UTC)
    >>> week_factor((1, "b"), monday) == week_factor((1, "b"), sunday) > 0.5
    True
    """
    year, week, _ = to_local(ts).isocalendar()
    return max(0.5, 1.0 + WEEK_SPREAD * noise.gauss(*key, "week", year, week))


def reported_fill(fill: float, *, key: Sequence[object], ts: datetime, glitch_rate: float) -> float:
    """What the ultrasonic sensor reports: noisy, and now and then a glitch of 0 or 100."""
    epoch = int(ts.timestamp())
    if noise.uniform(*key, "glitch", epoch) < glitch_rate:
        return 0.0 if noise.uniform(*key, "glitch-side", epoch) < 0.5 else FULL_PCT
    noisy = fill + SENSOR_NOISE_PCT * noise.gauss(*key, "fill", epoch)
    return round(min(FULL_PCT, max(0.0, noisy)), 1)


def bin_temperature_c(
    spec: BinSpec,
    *,
    key: Sequence[object],
    ts: datetime,
    outdoor_c: float,
    fill: float,
    fire_since: datetime | None = None,
) -> float:
    """Temperature inside the bin: outdoor air, sun on the lid, rotting waste, and fire.

    `fire_since` is the start of a fire (event `bin_fire`), or None.
    """
    hour = local_hour(to_local(ts))
    sun = 4.0 * window(hour, 8.0, 19.0, ramp=4.0)
    rot = 0.03 * fill if spec.stream == "general" else 0.0
    temp = outdoor_c + sun + rot + TEMP_NOISE_C * noise.gauss(*key, "temp", int(ts.timestamp()))
    if fire_since is not None:
        ramp = min(1.0, (ts - fire_since) / FIRE_RAMP)
        temp += FIRE_RISE_C[0] + FIRE_RISE_C[1] * ramp
    return round(temp, 1)
