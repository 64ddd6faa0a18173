"""The circuit processor on simulated nights: what it learns and each kind of alert.

The circuit: ten 100 W lamps (1000 W), reporting every 15 minutes, lit from sunset to sunrise
in Paris unless a test says otherwise; its dimming and switch-off follow the town's schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

import pytest

from services.lighting.domain.circuit import (
    MIN_LEARNT,
    LightingProcessor,
    LightingRow,
)
from shared.night import Town
from shared.runtime.processor import replay
from shared.schemas import AlertEvent, Reading

pytestmark = pytest.mark.unit

PARIS = Town(latitude=48.8566, longitude=2.3522, zone="Europe/Paris")
T0 = datetime(2026, 12, 1, 11, tzinfo=UTC)  # noon in Paris
STEP = timedelta(minutes=15)
FULL_W, LAMP_W = 1000.0, 100.0

# (ts, default power when lit) -> (power W, dimming % or None); None: switched off.
Plan = Callable[[datetime, float], tuple[float, float | None] | None]


def lit_all_night(town: Town) -> Plan:
    return lambda ts, w: (w, None) if town.night(ts) else None


def following(town: Town) -> Plan:
    """Lit at night as the schedule says: off, dimmed or full."""

    def plan(ts: datetime, w: float) -> tuple[float, float | None] | None:
        if not town.night(ts):
            return None
        mode = town.mode(ts)
        if mode == "off":
            return None
        return (w * town.dim_pct / 100, town.dim_pct) if mode == "dim" else (w, 100.0)

    return plan


def messages(
    days: float, plan: Plan, *, power: Callable[[datetime], float] = lambda ts: FULL_W
) -> list[list[Reading]]:
    out = []
    for i in range(int(days * 96)):
        ts = T0 + i * STEP
        state = plan(ts, power(ts) + 3 * math.sin(i))  # a few watts of mains noise
        watts, dimming = state if state is not None else (0.0, None)
        msg = [
            Reading(ts=ts, metric="power_w", value=watts, unit="W"),
            Reading(ts=ts, metric="energy_kwh", value=watts * 0.25 / 1000, unit="kWh"),
            Reading(ts=ts, metric="voltage_v", value=230.0, unit="V"),
            Reading(ts=ts, metric="circuit_1_on", value=float(state is not None)),
        ]
        if dimming is not None:
            msg.append(Reading(ts=ts, metric="dimming_pct", value=dimming))
        out.append(msg)
    return out


def starts(events: list[AlertEvent]) -> dict[str, list[AlertEvent]]:
    found: dict[str, list[AlertEvent]] = {}
    for e in events:
        if e.phase == "start":
            found.setdefault(e.kind, []).append(e)
    return found


def run(town: Town, msgs: list[list[Reading]]) -> list[AlertEvent]:
    return replay(LightingProcessor(town=town, lamp_w=LAMP_W), device_id="c1", messages=msgs)


def test_a_steady_circuit_raises_nothing_and_learns_its_power() -> None:
    proc = LightingProcessor(town=PARIS, lamp_w=LAMP_W)
    state = proc.new_state("c1")
    events = replay(proc, device_id="c1", messages=messages(5, lit_all_night(PARIS)), state=state)
    assert events == []
    learnt = state.learnt(100)
    assert learnt is not None and abs(learnt - FULL_W) < 5


def test_a_steady_circuit_following_its_schedule_raises_nothing() -> None:
    town = Town(
        latitude=PARIS.latitude,
        longitude=PARIS.longitude,
        zone=PARIS.zone,
        off=(time(1), time(5)),
        dim=(time(22), time(1)),
        dim_pct=50,
    )
    assert run(town, messages(5, following(town))) == []


def failing_after(day: float, watts: float) -> Callable[[datetime], float]:
    return lambda ts: FULL_W - watts if ts >= T0 + timedelta(days=day) else FULL_W


def test_a_lamp_failure_opens_after_a_sustained_drop_of_one_lamp() -> None:
    events = run(PARIS, messages(5, lit_all_night(PARIS), power=failing_after(3.5, LAMP_W)))
    failures = starts(events)["lighting.lamp_failure"]
    assert len(failures) == 1
    # It opened in the night after the drop, from the first reading of the drop.
    assert failures[0].episode_start >= T0 + timedelta(days=3.5)
    assert failures[0].explanation["drop_w"] >= LAMP_W - 10
    assert set(starts(events)) == {"lighting.lamp_failure"}


def test_a_drop_smaller_than_a_lamp_is_no_failure() -> None:
    assert run(PARIS, messages(5, lit_all_night(PARIS), power=failing_after(3.5, 40))) == []


def test_a_cold_model_raises_no_failure() -> None:
    """A new circuit that loses two lamps within its first hour lit: less than `MIN_LEARNT`
    of readings, so what it draws after is what it learns, and nothing is raised."""
    dusk = PARIS.sun(T0.date())
    assert dusk is not None
    early = dusk[1] + MIN_LEARNT / 2

    def power(ts: datetime) -> float:
        return FULL_W - 2 * LAMP_W if ts >= early else FULL_W

    proc = LightingProcessor(town=PARIS, lamp_w=LAMP_W)
    state = proc.new_state("c1")
    msgs = messages(3, lit_all_night(PARIS), power=power)
    assert replay(proc, device_id="c1", messages=msgs, state=state) == []
    learnt = state.learnt(100)
    assert learnt is not None and abs(learnt - (FULL_W - 2 * LAMP_W)) < 5


def test_lights_on_in_daylight() -> None:
    stuck = T0 + timedelta(days=3)  # noon, the third day: the contactor sticks until evening

    def plan(ts: datetime, w: float) -> tuple[float, float | None] | None:
        on = PARIS.night(ts) or stuck <= ts < stuck + timedelta(hours=4)
        return (w, None) if on else None

    found = starts(run(PARIS, messages(5, plan)))
    assert set(found) == {"lighting.daylight"}
    assert found["lighting.daylight"][0].episode_start == stuck


def test_a_night_off_the_schedule() -> None:
    town = Town(
        latitude=PARIS.latitude, longitude=PARIS.longitude, zone=PARIS.zone, off=(time(1), time(5))
    )
    bad_night = T0 + timedelta(days=3)
    following_it = following(town)

    def plan(ts: datetime, w: float) -> tuple[float, float | None] | None:
        if bad_night <= ts < bad_night + timedelta(days=1):
            return lit_all_night(town)(ts, w)  # the clock of the cabinet lost its program
        return following_it(ts, w)

    found = starts(run(town, messages(5, plan)))
    assert set(found) == {"lighting.schedule"}
    (ep,) = found["lighting.schedule"]
    assert town.local(ep.episode_start).time() == time(1)
    assert ep.explanation["scheduled"] == "off"


def test_a_night_not_dimmed() -> None:
    town = Town(
        latitude=PARIS.latitude,
        longitude=PARIS.longitude,
        zone=PARIS.zone,
        dim=(time(23), time(5)),
        dim_pct=50,
    )
    bad_night = T0 + timedelta(days=3)
    following_it = following(town)

    def plan(ts: datetime, w: float) -> tuple[float, float | None] | None:
        if bad_night <= ts < bad_night + timedelta(days=1) and town.night(ts):
            return (w, 100.0)
        return following_it(ts, w)

    found = starts(run(town, messages(5, plan)))
    assert set(found) == {"lighting.schedule"}
    assert town.local(found["lighting.schedule"][0].episode_start).time() == time(23)


def test_a_drift_of_the_learnt_power() -> None:
    # Ageing drivers: +15 % from the fourth night on, a rise no lamp failure explains.
    def power(ts: datetime) -> float:
        return FULL_W * (1.15 if ts >= T0 + timedelta(days=3.5) else 1.0)

    found = starts(run(PARIS, messages(6, lit_all_night(PARIS), power=power)))
    assert set(found) == {"lighting.drift"}
    (ep,) = found["lighting.drift"]
    assert ep.explanation["learnt_w"] - ep.explanation["reference_w"] >= 0.1 * FULL_W


def test_savings_baseline_is_full_power_from_dusk_to_dawn() -> None:
    """Each night reading's baseline is the learnt full power for its interval; the plan's
    all-night kWh is the same sum, from the almanac."""
    town = Town(
        latitude=PARIS.latitude, longitude=PARIS.longitude, zone=PARIS.zone, off=(time(1), time(5))
    )
    proc = LightingProcessor(town=town, lamp_w=LAMP_W)
    state = proc.new_state("c1")
    rows: list[LightingRow] = []
    for msg in messages(4, following(town)):
        rows += [
            r
            for r in proc.process(state, device_id="c1", readings=msg).rows
            if isinstance(r, LightingRow)
        ]
    night = T0.date() + timedelta(days=2)
    plan = town.plan(night)
    assert plan is not None
    in_night = [r for r in rows if plan.dusk <= r.ts < plan.dawn]
    baseline = sum(r.baseline_kwh or 0.0 for r in in_night)
    used = sum(r.energy_kwh or 0.0 for r in in_night)
    learnt = state.learnt(100)
    assert learnt is not None
    # Within one 15-minute reading at each end of the night.
    assert abs(baseline - plan.all_night_kwh(learnt)) <= 2 * learnt * 0.25 / 1000
    # Four hours off: about 4 kWh saved of a 1000 W circuit.
    assert abs((baseline - used) - 4 * FULL_W / 1000) <= 0.3
    forecast = plan.forecast_kwh(full_w=learnt, dim_w=learnt / 2)
    assert abs(forecast - used) <= 2 * learnt * 0.25 / 1000 + 0.05


def test_learning_until_the_dawn_after_its_first_lit_hours() -> None:
    proc = LightingProcessor(town=PARIS, lamp_w=LAMP_W)
    state = proc.new_state("c1")
    msgs = messages(1.5, lit_all_night(PARIS))
    first_day = msgs[: 4 * 6]  # noon to 18:00 in Paris: off, then its first hour lit
    replay(proc, device_id="c1", messages=first_day, state=state)
    plan = PARIS.plan(T0.date())
    assert plan is not None
    assert proc.learning_until(state) == plan.dawn
    replay(proc, device_id="c1", messages=msgs[len(first_day) :], state=state)
    assert proc.learning_until(state) is None
