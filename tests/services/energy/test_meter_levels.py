"""The meter's level watch through the energy service's processor: a step is alerted once (the
new level is relearnt, not alerted forever), a night left on is an out-of-hours alert within two
hours, a checkpoint from before the watch loads and starts it cold in the town's calendar, and a
technician's false alarm on the watch's kinds widens its limits in that alert's context.

Pure logic: an hourly office meter, open on the town's working days from 8:00 to 18:00 local time
(10 kW otherwise, 25 kW open, +/- 10 %), fed to the processor reading by reading.
"""

from __future__ import annotations

import pickle
import random
from datetime import datetime, timedelta

import pytest

from services.energy.domain.meter import EnergyProcessor, MeterState
from shared.ml.calendar import TOWN, WORKDAY, TownCalendar
from shared.ml.levels import SPREAD_LEARNT, WIDEN_DAYS, LevelWatch
from shared.runtime.feedback import Feedback, Verdict
from tests.services.energy.test_meter_durations import HOUR, T0, run

pytestmark = pytest.mark.unit

LEARNT = SPREAD_LEARNT + timedelta(days=7)


def office(ts: datetime, interval: timedelta, rng: random.Random) -> float:
    day_type, minute = TOWN.key(ts, slot_minutes=1)
    busy = day_type == WORKDAY and 8 * 60 <= minute < 18 * 60
    return round((25.0 if busy else 10.0) * rng.uniform(0.9, 1.1) * (interval / HOUR), 4)


@pytest.fixture(scope="module")
def warmed() -> bytes:
    """Nine weeks of an hourly office meter learnt."""
    _, events, state = run(interval=HOUR, days=LEARNT, value=office)
    assert [e for e in events if e.phase == "start"] == []  # ordinary weeks: nothing to say
    return pickle.dumps(state)


def _go_on(state: MeterState, *, days: timedelta, fault: object) -> list[object]:
    _, events, _ = run(
        interval=HOUR, days=days, fault=fault, state=state, start=T0 + LEARNT, value=office
    )  # type: ignore[arg-type]
    return events


def test_a_step_is_alerted_once_and_its_level_relearnt(warmed: bytes) -> None:
    state = pickle.loads(warmed)
    at = T0 + LEARNT + timedelta(days=1, hours=9)

    def step(ts: datetime, v: float) -> float:
        return v * 1.4 if ts >= at else v

    events = _go_on(state, days=timedelta(days=14), fault=step)
    starts = [e for e in events if e.phase == "start"]  # type: ignore[attr-defined]
    assert len(starts) == 1, [(e.kind, e.ts) for e in starts]  # type: ignore[attr-defined]
    # The band sees it at once, or the level watch within three days (days judged once over).
    assert at <= starts[0].ts <= at + timedelta(days=3)
    # The watch took the new level as the meter's: the long level followed the short one.
    assert abs(state.levels.long.ratio / state.levels.short.ratio - 1) < 0.1


def test_a_night_left_on_is_an_out_of_hours_alert_within_two_hours(warmed: bytes) -> None:
    state = pickle.loads(warmed)
    night = T0 + LEARNT + timedelta(days=1, hours=20)  # a Tuesday, 21:00 in Paris

    def left_on(ts: datetime, v: float) -> float:
        return v + 4.0 if night <= ts < night + timedelta(hours=10) else v  # 10 kW base

    events = _go_on(state, days=timedelta(days=3), fault=left_on)
    starts = [e for e in events if e.phase == "start"]  # type: ignore[attr-defined]
    assert [e.kind for e in starts] == ["energy.consumption_off_hours"]  # type: ignore[attr-defined]
    assert night <= starts[0].ts <= night + 2 * HOUR  # type: ignore[attr-defined]


def test_a_checkpoint_from_before_the_watch_loads_and_starts_it_cold() -> None:
    calendar = TownCalendar("Europe/London", "GB")
    proc = EnergyProcessor(calendar=calendar)
    state = proc.new_state("m")
    old = dict(state.__dict__)
    del old["levels"]
    restored = MeterState.__new__(MeterState)
    restored.__setstate__(old)
    assert isinstance(restored.levels, LevelWatch) and not restored.levels.shape
    _, _, after = run(
        interval=HOUR, days=timedelta(days=1), processor=proc, state=restored, value=office
    )
    assert after.levels.calendar == calendar and after.levels.shape


def test_a_level_watch_still_learning_says_so_and_raises_no_level_alert() -> None:
    """Four weeks in, the band is warm (every day type and hour seen on enough days) but the
    level watch waits for 56 days of history: the state says until when, and the step the
    warm meter above alerts as a level change raises none."""
    weeks = timedelta(days=28)
    _, _, state = run(interval=HOUR, days=weeks, value=office)
    proc = EnergyProcessor()
    # The first reading was at T0: 56 days of history from then.
    assert proc.learning_until(state) is None
    assert proc.warming(state) == {"level_watch": T0 + timedelta(days=56)}
    at = T0 + weeks + timedelta(days=1, hours=9)

    def step(ts: datetime, v: float) -> float:
        return v * 1.4 if ts >= at else v

    _, events, state = run(
        interval=HOUR,
        days=timedelta(days=14),
        fault=step,
        state=state,
        start=T0 + weeks,
        value=office,
    )
    kinds = {e.kind for e in events}
    assert not kinds & {"energy.level_shift", "energy.consumption_drift"}
    assert set(proc.warming(state)) == {"level_watch"}


def test_a_new_meter_says_what_warms_and_until_when() -> None:
    _, _, state = run(interval=HOUR, days=timedelta(days=2), value=office)
    warming = EnergyProcessor().warming(state)
    assert set(warming) == {"band", "schedule", "level_watch"}
    # Out of hours after three weeks of history, level changes after eight.
    assert warming["schedule"] == T0 + timedelta(days=21)
    assert warming["level_watch"] == T0 + timedelta(days=56)
    assert warming["band"] == EnergyProcessor.learning_until(state)


def _verdict(n: int, kind: str, verdict: Verdict, start: datetime) -> Feedback:
    return Feedback(
        n, "al_1", "m", kind, verdict, start, start + 9 * HOUR, start + timedelta(days=1)
    )


def test_a_false_alarm_on_an_out_of_hours_alert_widens_its_hours_and_real_undoes_it() -> None:
    """The processor hands a false alarm on the level watch's kinds to the watch (its hours'
    contexts widened, docs/energy.md "Feedback"); offered again it changes nothing more; a later
    "real" on the same alert undoes it; a false alarm on a stuck meter widens nothing."""
    proc = EnergyProcessor()
    state = proc.new_state("m")
    night = datetime(2026, 3, 3, 20, tzinfo=TOWN.tz)  # a Tuesday, 20:00 local
    hours = {TOWN.key(night + k * HOUR, slot_minutes=60) for k in range(10)}
    fa = _verdict(1, "energy.consumption_off_hours", "false_alarm", night)
    received = night + timedelta(days=2)
    proc.apply_feedback(state, fa, received_at=received)
    contexts, until = state.levels.widened["al_1"]
    assert contexts == {f"{day}/{hour}" for day, hour in hours}
    assert until == night + 9 * HOUR + timedelta(days=WIDEN_DAYS)
    before = pickle.dumps(state.levels)
    proc.apply_feedback(state, fa, received_at=received + HOUR)
    assert pickle.dumps(state.levels) == before
    proc.apply_feedback(state, _verdict(2, fa.kind, "real", night), received_at=received + 2 * HOUR)
    assert state.levels.widened == {}
    proc.apply_feedback(
        state, _verdict(3, "energy.meter_stuck", "false_alarm", night), received_at=received
    )
    assert state.levels.widened == {}


def test_a_false_alarm_on_a_level_shift_widens_level_changes() -> None:
    """Without a remembered change in the episode (here none was alerted), both directions."""
    proc = EnergyProcessor()
    state = proc.new_state("m")
    at = datetime(2026, 3, 3, 9, tzinfo=TOWN.tz)
    proc.apply_feedback(
        state,
        _verdict(1, "energy.level_shift", "false_alarm", at),
        received_at=at + timedelta(days=2),
    )
    assert state.levels.widened["al_1"][0] == {"up", "down"}
