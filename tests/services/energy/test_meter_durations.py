"""The meter's durations are time, whatever the meter's reporting interval; a steady-valued
sensor raises no stuck alert; a model that has not seen enough raises none at all.

Pure logic: synthetic meters (an office's working-hours profile with noise) fed to the
processor reading by reading.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.energy.domain.meter import (
    CLOSE_AFTER,
    OPEN_AFTER,
    STUCK_AFTER,
    EnergyProcessor,
    MeterState,
    ScoreRow,
)
from shared.runtime.processor import Effects
from shared.schemas import AlertEvent, Reading

pytestmark = pytest.mark.unit

T0 = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday; no French public holiday for weeks
MINUTE, QUARTER, HOUR = timedelta(minutes=1), timedelta(minutes=15), timedelta(hours=1)
WARM = timedelta(days=15)  # two of each weekday: every slot seen on WARM_UP_DAYS days or more


def office_kwh(ts: datetime, interval: timedelta, rng: random.Random) -> float:
    """kWh over `interval`: 10 kW at night and at weekends, 25 kW in working hours."""
    local = ts.astimezone(UTC) + timedelta(hours=1)
    busy = local.weekday() < 5 and 8 <= local.hour < 18
    kw = (25.0 if busy else 10.0) * rng.uniform(0.9, 1.1)
    return round(kw * (interval / HOUR), 4)


Fault = Callable[[datetime, float], float]


def run(
    *,
    interval: timedelta,
    days: timedelta,
    fault: Fault = lambda ts, v: v,
    value: Callable[[datetime, timedelta, random.Random], float] = office_kwh,
    processor: EnergyProcessor | None = None,
    state: MeterState | None = None,
    start: datetime = T0,
) -> tuple[list[ScoreRow], list[AlertEvent], MeterState]:
    proc = processor or EnergyProcessor()
    s = state or proc.new_state("m")
    rng = random.Random(7)
    out = Effects()
    ts = start
    while ts < start + days:
        v = fault(ts, value(ts, interval, rng))
        out.extend(
            proc.process(s, device_id="m", readings=[Reading(ts=ts, metric="energy_kwh", value=v)])
        )
        ts += interval
    rows = [r for r in out.rows if isinstance(r, ScoreRow)]
    return rows, out.events, s


def readings_covering(duration: timedelta, interval: timedelta) -> int:
    """Independently of the code under test: whole readings covering `duration`."""
    n = 0
    while n * interval < duration:
        n += 1
    return max(n, 1)


def far_out(row: ScoreRow) -> bool:
    """Independently of the code under test: three band-widths from the expected value."""
    band = max(row.upper - row.expected, 1e-9)
    return abs(row.observed - row.expected) > 3 * band


@pytest.mark.parametrize(
    ("interval", "factor", "far"),
    [
        (MINUTE, 5.0, True),
        (QUARTER, 5.0, True),
        (HOUR, 5.0, True),
        (QUARTER, 1.5, False),
        (HOUR, 1.5, False),
    ],
    ids=["1min-far", "15min-far", "hourly-far", "15min-near", "hourly-near"],
)
def test_an_episode_opens_after_45_minutes_and_closes_after_an_hour_at_any_interval(
    interval: timedelta, factor: float, far: bool
) -> None:
    # Tuesday of the third week, 10:00 to 14:00 UTC: a heater multiplies the load.
    fault_start = T0 + WARM + timedelta(days=1, hours=10)
    fault_end = fault_start + timedelta(hours=4)

    def heater(ts: datetime, v: float) -> float:
        return v * factor if fault_start <= ts < fault_end else v

    rows, events, state = run(
        interval=interval, days=WARM + timedelta(days=2, hours=12), fault=heater
    )
    assert state.cadence.interval == interval
    starts = [e for e in events if e.phase == "start"]
    ends = [e for e in events if e.phase == "end"]
    assert len(starts) == 1 and len(ends) == 1, [(e.kind, e.phase, e.ts) for e in events]
    start, end = starts[0], ends[0]
    flagged = {r.ts for r in rows if r.is_anomaly}
    # The episode starts at its first flagged reading, within the fault...
    assert fault_start <= start.episode_start < fault_start + timedelta(hours=1)
    # ... and the alert comes on the reading that completes 45 minutes of flagged readings (two
    # readings at least), or on the first one far out, whichever comes first.
    n_open = max(2, readings_covering(OPEN_AFTER, interval))
    run_before_alert = [start.episode_start + k * interval for k in range(n_open)]
    by_ts = {r.ts: r for r in rows}
    assert far_out(by_ts[start.episode_start]) is far  # the case this parameter is for
    opening = next((t for t in run_before_alert if far_out(by_ts[t])), run_before_alert[-1])
    assert {t for t in run_before_alert if t <= opening} <= flagged
    assert start.ts == opening
    # It ends once an hour of normal readings has followed the last flagged one.
    last_flagged = max(t for t in flagged if t < end.ts)
    assert end.ts == last_flagged + readings_covering(CLOSE_AFTER, interval) * interval
    assert not any(last_flagged < t <= end.ts for t in flagged)


@pytest.mark.parametrize("interval", [QUARTER, HOUR], ids=["15min", "hourly"])
def test_a_meter_stuck_for_two_hours_is_flagged_at_any_interval(interval: timedelta) -> None:
    """The contrast of the steady sensor below: a varying meter that freezes is caught."""
    frozen_from = T0 + WARM + timedelta(days=1, hours=9)
    frozen: dict[str, float] = {}

    def stuck(ts: datetime, v: float) -> float:
        if frozen_from <= ts < frozen_from + timedelta(hours=6):
            return frozen.setdefault("v", v)
        return v

    rows, events, _ = run(interval=interval, days=WARM + timedelta(days=2), fault=stuck)
    starts = [e for e in events if e.phase == "start"]
    assert [e.kind for e in starts] == ["energy.meter_stuck"]
    # Flagged once the frozen value has lasted STUCK_AFTER (its first reading plus repeats).
    first_stuck = min(r.ts for r in rows if r.kind == "energy.meter_stuck")
    assert first_stuck - frozen_from >= STUCK_AFTER - interval
    assert first_stuck - frozen_from < STUCK_AFTER + 6 * interval


def steady_pressure(ts: datetime, interval: timedelta, rng: random.Random) -> float:
    """A sensor whose value normally holds: it moves by a step now and then, then stays."""
    return 2.0 + 0.1 * (rng.random() < 0.03) + 0.1 * ((ts - T0) // timedelta(hours=5) % 3)


def test_a_steady_valued_sensor_raises_no_stuck_alert() -> None:
    # After its warm-up, the value holds for three days: what this sensor does.
    hold_from = T0 + WARM

    def holds(ts: datetime, v: float) -> float:
        return 2.0 if ts >= hold_from else v

    rows, events, state = run(
        interval=QUARTER, days=WARM + timedelta(days=3), fault=holds, value=steady_pressure
    )
    assert state.warm.ready(hold_from + timedelta(days=1))
    assert sum(r.observed == 2.0 for r in rows if r.ts >= hold_from) == 3 * 96
    assert not [r for r in rows if r.kind == "energy.meter_stuck"]
    assert not [e for e in events if e.kind == "energy.meter_stuck"]


def test_a_cold_model_raises_no_alert_and_says_it_is_learning() -> None:
    # A meter that goes wrong on its second day: wild values, frozen values, nothing alerts.
    def chaos(ts: datetime, v: float) -> float:
        day = (ts - T0).days
        if day == 1:
            return v * 8
        return 3.0 if day == 2 else v

    rows, events, state = run(interval=QUARTER, days=timedelta(days=4), fault=chaos)
    assert events == []
    assert not any(r.is_anomaly for r in rows)
    proc = EnergyProcessor()
    last = rows[-1].ts
    until = proc.learning_until(state)
    assert until is not None and until > last
    # The same meter, learning on for three weeks, is calibrated: the state says so, and the
    # same wild day then alerts.
    later = T0 + timedelta(days=21)

    def wild_after(ts: datetime, v: float) -> float:
        return v * 8 if ts >= later + timedelta(hours=10) else v

    _, events, state = run(
        interval=QUARTER,
        days=timedelta(days=18),
        start=T0 + timedelta(days=4),
        fault=wild_after,
        processor=proc,
        state=state,
    )
    assert proc.learning_until(state) is None
    assert [e.phase for e in events if e.ts >= later][:1] == ["start"]


def test_warm_up_needs_each_day_type_on_enough_days() -> None:
    """Ten working days and no weekend yet: working hours alert, a Saturday does not."""
    _, _, state = run(interval=HOUR, days=timedelta(days=5))
    saturday = T0 + timedelta(days=5, hours=10)
    assert state.warm.ready(T0 + timedelta(days=5 + 2, hours=10))  # the next Monday
    assert not state.warm.ready(saturday)
    until = EnergyProcessor.learning_until(state)
    # Three non-working days to come, two a week: about ten days from the last reading.
    assert until is not None
    assert timedelta(days=7) <= until - (T0 + timedelta(days=5) - HOUR) <= timedelta(days=14)
