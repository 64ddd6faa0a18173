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

from shared.ml.levels import (
    LONG,
    MAX_VERDICTS,
    MAX_WIDEN,
    SPREAD_LEARNT,
    WIDEN,
    WIDEN_DAYS,
    LevelVerdict,
    LevelWatch,
)

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

    verdicts = feed(w, start=at - DAY, span=4 * DAY, interval=HOUR, change=step)
    shifts = [(ts, v) for ts, v in verdicts if v.kind == "shift"]
    assert shifts, "the step was never flagged"
    first, verdict = shifts[0]
    # Days are judged once over, by the mean of the last three: within three days.
    assert at < first <= at + 3 * DAY
    assert math.copysign(1.0, verdict.change) == math.copysign(1.0, factor - 1)
    assert not any(v.kind in ("shift", "drift") for ts, v in verdicts if ts < at)
    # The alert was sent: the new level is the meter's, and it is not flagged again.
    w.accept()
    later = feed(w, start=at + DAY, span=10 * DAY, interval=HOUR, change=step, seed=5)
    assert [(ts, v.kind) for ts, v in later if v.kind in ("shift", "drift")] == []


def test_a_slow_rise_to_40_percent_in_14_days_is_found_by_its_last_day(hourly: bytes) -> None:
    w = pickle.loads(hourly)
    at = T0 + LEARNT

    def drift(ts: datetime, kw: float) -> float:
        return kw * (1 + 0.4 * min(1.0, max(0.0, (ts - at) / (14 * DAY))))

    verdicts = feed(w, start=at, span=15 * DAY, interval=HOUR, change=drift)
    found = [ts for ts, v in verdicts if v.kind in ("drift", "shift")]
    assert found, "the drift was never flagged"
    # Not in its first days (a rise of a few percent is no fault); on the day after its last at
    # the latest (days are judged once over; its nights are out-of-hours use by then).
    assert at + 3 * DAY < found[0] < at + 15 * DAY


@pytest.fixture(scope="module")
def hourly_step_found() -> datetime:
    """When the hourly meter's watch flags a step of +40 % (Tuesday 9:00 after it learnt)."""
    verdicts = feed(learnt(HOUR), start=T0 + LEARNT, span=5 * DAY, interval=HOUR, change=_step)
    return next(ts for ts, v in verdicts if v.kind in ("shift", "drift"))


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
    verdicts = feed(w, start=T0 + LEARNT, span=5 * DAY, interval=interval, change=_step)
    first = next(ts for ts, v in verdicts if v.kind in ("shift", "drift"))
    assert STEP_AT < first <= STEP_AT + 3 * DAY
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


# ---- a technician's false alarm widens the limits of its context (docs/energy.md) -------------


def test_a_false_alarm_out_of_hours_widens_that_day_type_and_hour_only(hourly: bytes) -> None:
    """The allowance above the base is multiplied by `WIDEN` in the alert's hours (day type and
    hour), at most `MAX_WIDEN`, for `WIDEN_DAYS` after the episode; other hours unchanged; a
    later verdict on the alert undoes it."""
    w = pickle.loads(hourly)
    night = T0 + LEARNT + timedelta(days=1, hours=20)  # a Tuesday, 20:00
    tuesday_2am = night + 6 * HOUR
    wednesday_2am = tuesday_2am + DAY  # same day type (working day) and hour
    saturday_2am = tuesday_2am + 4 * DAY
    before = {t: w.explain_one({"ts": t, "value": 10.0}) for t in (wednesday_2am, saturday_2am)}
    w.widen("al_1", kind="off_hours", start=night, end=night + 9 * HOUR)
    after = {t: w.explain_one({"ts": t, "value": 10.0}) for t in (wednesday_2am, saturday_2am)}

    def allowance(v: LevelVerdict) -> float:
        return v.limit - v.expected

    b, a = before[wednesday_2am], after[wednesday_2am]
    assert allowance(a) == pytest.approx(WIDEN * allowance(b))
    assert after[saturday_2am].limit == before[saturday_2am].limit
    # A night like the one told a false alarm: flagged before, no longer.
    between = (b.limit + a.limit) / 2
    assert w.explain_one({"ts": wednesday_2am, "value": between}).kind is None
    assert pickle.loads(hourly).explain_one({"ts": wednesday_2am, "value": between}).kind == (
        "off_hours"
    )
    # Beyond the widened limit it still alerts; repeated verdicts stop at `MAX_WIDEN`.
    assert w.explain_one({"ts": wednesday_2am, "value": a.limit + 1}).kind == "off_hours"
    for k in range(2, 10):
        w.widen(f"al_{k}", kind="off_hours", start=night, end=night + 9 * HOUR)
    most = w.explain_one({"ts": wednesday_2am, "value": 10.0})
    assert allowance(most) == pytest.approx(min(MAX_WIDEN, WIDEN**MAX_VERDICTS) * allowance(b))
    # The latest verdict counts: "real" on those alerts undoes them.
    for k in range(1, 10):
        w.unwiden(f"al_{k}")
    assert w.explain_one({"ts": wednesday_2am, "value": 10.0}).limit == b.limit


def test_a_widened_out_of_hours_limit_lapses_after_widen_days(hourly: bytes) -> None:
    w = pickle.loads(hourly)
    night = T0 + LEARNT + timedelta(days=1, hours=20)
    end = night + 9 * HOUR
    w.widen("al_1", kind="off_hours", start=night, end=end)
    # Same day type and hour as the episode's 2:00, within the 28 days and just after.
    within = end - 3 * HOUR + timedelta(days=WIDEN_DAYS - 1)
    after = within + 2 * DAY
    fresh = pickle.loads(hourly)
    widened, plain = (x.explain_one({"ts": within, "value": 10.0}) for x in (w, fresh))
    assert widened.limit > plain.limit
    widened, plain = (x.explain_one({"ts": after, "value": 10.0}) for x in (w, fresh))
    assert widened.limit == plain.limit
    w.learn_one({"ts": after, "value": 10.0})  # and the watch forgets it
    assert w.widened == {}


def test_a_false_alarm_on_a_step_down_widens_level_changes_down_only(hourly: bytes) -> None:
    """After a false alarm on a downward shift, the same step down again is taken in (its
    size is within the widened limit) while an unwidened watch alerts it, and a step up of the
    same kind is still alerted."""
    w = pickle.loads(hourly)
    at = T0 + LEARNT + timedelta(days=1, hours=9)

    def down(ts: datetime, kw: float) -> float:
        return kw * 0.6 if ts >= at else kw

    verdicts = feed(w, start=at - DAY, span=4 * DAY, interval=HOUR, change=down)
    found = next(ts for ts, v in verdicts if v.kind in ("shift", "drift"))
    w.accept()  # the alert was sent
    assert w.changes[-1][1] == "down"
    w.widen("al_1", kind="shift", start=found, end=None)  # told while it goes on
    control = pickle.loads(pickle.dumps(w))
    control.unwiden("al_1")
    again = at + 6 * DAY  # the next Monday, 9:00 (a step seen by day, not out of hours)

    def down_again(ts: datetime, kw: float) -> float:
        return kw * 0.6 * (0.7 if ts >= again else 1.0)

    def changes(watch: LevelWatch, change: Change) -> list[datetime]:
        out = feed(watch, start=at + 3 * DAY, span=8 * DAY, interval=HOUR, change=change)
        return [ts for ts, v in out if v.kind in ("shift", "drift")]

    up = pickle.loads(pickle.dumps(w))
    assert changes(control, down_again), "an unwidened watch alerts the second step"
    assert changes(w, down_again) == []

    def up_again(ts: datetime, kw: float) -> float:
        return kw * 0.6 * (1.5 if ts >= again else 1.0)

    assert changes(up, up_again), "a step up is another context: still alerted"


def test_a_watch_pickled_before_the_days_test_loads_cold_for_level_changes(hourly: bytes) -> None:
    """A checkpoint without the days' CUSUM (or the widened limits) loads: its shape and levels
    are kept, and it flags no level change until it has learnt the days' spread."""
    w = pickle.loads(hourly)
    state = dict(w.__dict__)
    for name in ("day", "day_noise", "day_weight", "noise_days", "up", "down", "run", "widened"):
        del state[name]
    old = LevelWatch.__new__(LevelWatch)
    old.__setstate__(state)
    assert old.shape == w.shape and old.noise_days == 0 and old.widened == {}
    at = T0 + LEARNT + timedelta(days=1, hours=9)
    verdicts = feed(old, start=at, span=3 * DAY, interval=HOUR, change=lambda ts, kw: kw * 1.6)
    assert [v.kind for _, v in verdicts if v.kind in ("shift", "drift")] == []
