"""The level watch (shared/ml/levels.py): out-of-hours use above the learnt base, level shifts and
drifts, relearnt once accepted; durations in time whatever the meter's interval; a cold watch
flags nothing.

Pure logic: a synthetic office (10 kW at night and weekends, 25 kW in working hours, +/- 5 %
noise) fed to the watch directly, as kWh per reading of each interval.
"""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from shared.ml.levels import LONG, SPREAD_LEARNT, LevelVerdict, LevelWatch

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; London: no public holiday for weeks after
MINUTE, QUARTER, HOUR, DAY = (
    timedelta(minutes=1),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(days=1),
)
LEARNT = SPREAD_LEARNT + 7 * DAY  # everything the watch flags is warm by then


def office_kw(ts: datetime, rng: random.Random) -> float:
    busy = ts.weekday() < 5 and 8 <= ts.hour < 18
    return (25.0 if busy else 10.0) * rng.uniform(0.95, 1.05)


Change = Callable[[datetime, float], float]


def feed(
    watch: LevelWatch,
    *,
    start: datetime,
    span: timedelta,
    interval: timedelta,
    change: Change = lambda ts, kw: kw,
    seed: int = 3,
) -> list[tuple[datetime, LevelVerdict]]:
    """Readings of `interval` (kWh) over `span`, each judged then learnt as the meter does:
    a flagged reading is not learnt as normal."""
    rng = random.Random(seed)
    out = []
    ts = start
    while ts < start + span:
        x = {"ts": ts, "value": change(ts, office_kw(ts, rng)) * (interval / HOUR)}
        verdict = watch.explain_one(x)
        out.append((ts, verdict))
        watch.learn_one(x, update_model=verdict.kind is None)
        ts += interval
    return out


def learnt(interval: timedelta) -> LevelWatch:
    w = LevelWatch("Europe/London", "GB")
    feed(w, start=T0, span=LEARNT, interval=interval)
    return w


@pytest.fixture(scope="module")
def hourly() -> bytes:
    return pickle.dumps(learnt(HOUR))


def test_ordinary_weeks_flag_nothing(hourly: bytes) -> None:
    w = pickle.loads(hourly)
    verdicts = feed(w, start=T0 + LEARNT, span=14 * DAY, interval=HOUR, seed=9)
    assert [(ts, v.kind) for ts, v in verdicts if v.kind is not None] == []


@pytest.mark.parametrize("extra", [0.3, 0.6])
def test_a_night_left_on_is_out_of_hours_and_the_same_excess_by_day_is_not(
    hourly: bytes, extra: float
) -> None:
    """The base load at night is 10 kW: 3 or 6 kW more from 20:00 to 06:00 is flagged there;
    the same 3 or 6 kW in working hours (on 25 kW) is within the day's usual level."""
    w = pickle.loads(hourly)
    night = T0 + LEARNT + timedelta(days=1, hours=20)  # a Tuesday evening
    day = night + timedelta(days=1, hours=-10)  # Wednesday 10:00

    def left_on(ts: datetime, kw: float) -> float:
        in_night = night <= ts < night + 10 * HOUR
        in_day = day <= ts < day + 6 * HOUR
        return kw + extra * 10.0 if in_night or in_day else kw

    verdicts = dict(feed(w, start=night - 6 * HOUR, span=2 * DAY, interval=HOUR, change=left_on))
    night_hours = [night + k * HOUR for k in range(10)]
    assert all(verdicts[t].unoccupied for t in night_hours)
    assert all(verdicts[t].kind == "off_hours" for t in night_hours)
    day_hours = [day + k * HOUR for k in range(6)]
    assert not any(verdicts[t].unoccupied for t in day_hours)
    assert all(verdicts[t].kind is None for t in day_hours)


@pytest.mark.parametrize("factor", [1.4, 0.6], ids=["up", "down"])
def test_a_step_is_a_shift_after_its_first_whole_day_and_is_relearnt_once_accepted(
    hourly: bytes, factor: float
) -> None:
    w = pickle.loads(hourly)
    at = T0 + LEARNT + timedelta(days=1, hours=9)

    def step(ts: datetime, kw: float) -> float:
        return kw * factor if ts >= at else kw

    verdicts = feed(w, start=at - DAY, span=3 * DAY, interval=HOUR, change=step)
    shifts = [(ts, v) for ts, v in verdicts if v.kind == "shift"]
    assert shifts, "the step was never flagged"
    first, verdict = shifts[0]
    # Days are judged once over: the first whole day of the new level tells.
    assert at + DAY < first <= at + 2 * DAY
    assert math.copysign(1.0, verdict.change) == math.copysign(1.0, factor - 1)
    assert not any(v.kind in ("shift", "drift") for ts, v in verdicts if ts < at)
    # The alert was sent: the new level is the meter's, and it is not flagged again.
    w.accept()
    later = feed(w, start=at + DAY, span=10 * DAY, interval=HOUR, change=step, seed=5)
    assert [(ts, v.kind) for ts, v in later if v.kind in ("shift", "drift")] == []


def test_a_slow_rise_to_40_percent_in_14_days_is_found_before_it_ends(hourly: bytes) -> None:
    w = pickle.loads(hourly)
    at = T0 + LEARNT

    def drift(ts: datetime, kw: float) -> float:
        return kw * (1 + 0.4 * min(1.0, max(0.0, (ts - at) / (14 * DAY))))

    verdicts = feed(w, start=at, span=14 * DAY, interval=HOUR, change=drift)
    found = [ts for ts, v in verdicts if v.kind in ("drift", "shift")]
    assert found, "the drift was never flagged"
    # Not in its first days (a rise of a few percent is no fault), before its end.
    assert at + 3 * DAY < found[0] < at + 14 * DAY


@pytest.fixture(scope="module")
def hourly_step_found() -> datetime:
    """When the hourly meter's watch flags a step of +40 % (Tuesday 9:00 after it learnt)."""
    verdicts = feed(learnt(HOUR), start=T0 + LEARNT, span=4 * DAY, interval=HOUR, change=_step)
    return next(ts for ts, v in verdicts if v.kind == "shift")


STEP_AT = T0 + LEARNT + timedelta(days=1, hours=9)


def _step(ts: datetime, kw: float) -> float:
    return kw * 1.4 if ts >= STEP_AT else kw


@pytest.mark.parametrize("interval", [MINUTE, QUARTER, HOUR], ids=["1min", "15min", "hourly"])
def test_durations_are_time_at_any_interval(
    interval: timedelta, hourly_step_found: datetime
) -> None:
    """The same building read every minute, quarter or hour: the levels move at the same pace,
    so a step is flagged at the same time (within an hour), and a cold watch flags nothing."""

    # A cold watch: twice the load on the first Monday night and from the tenth day on.
    def odd(ts: datetime, kw: float) -> float:
        night = T0 + timedelta(hours=20) <= ts < T0 + timedelta(days=1, hours=6)
        return 2 * kw if night or ts >= T0 + 10 * DAY else kw

    cold = LevelWatch("Europe/London", "GB")
    assert [
        v.kind
        for _, v in feed(cold, start=T0, span=LONG, interval=interval, change=odd)
        if v.kind is not None
    ] == []
    w = learnt(interval)
    verdicts = feed(w, start=T0 + LEARNT, span=4 * DAY, interval=interval, change=_step)
    first = next(ts for ts, v in verdicts if v.kind == "shift")
    assert STEP_AT + DAY < first <= STEP_AT + 2 * DAY
    assert abs(first - hourly_step_found) <= HOUR


def test_a_cold_watch_flags_nothing_out_of_hours() -> None:
    w = LevelWatch("Europe/London", "GB")
    night = T0 + timedelta(days=10, hours=2)
    feed(w, start=T0, span=night - T0, interval=HOUR)
    verdict = w.explain_one({"ts": night, "value": 100.0})
    assert verdict.kind is None and not verdict.schedule_known


def test_a_building_without_schedule_has_no_unoccupied_hour() -> None:
    """A data centre: the same load day and night, weekdays and weekends."""
    w = LevelWatch("Europe/London", "GB")
    rng = random.Random(1)
    ts = T0
    while ts < T0 + LEARNT:
        w.learn_one({"ts": ts, "value": 50.0 * rng.uniform(0.95, 1.05)})
        ts += HOUR
    verdicts = [w.explain_one({"ts": ts + k * HOUR, "value": 50.0}) for k in range(168)]
    assert all(v.schedule_known and not v.unoccupied for v in verdicts)


def test_a_planned_period_is_not_measured(hourly: bytes) -> None:
    """Readings not to `measure` (works a technician said were expected) teach nothing."""
    w = pickle.loads(hourly)
    before = pickle.dumps(w)
    ts = T0 + LEARNT
    for k in range(48):
        w.learn_one({"ts": ts + k * HOUR, "value": 500.0}, measure=False)
    assert pickle.dumps(w) == before
