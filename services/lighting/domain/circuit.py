"""One lighting cabinet or circuit controller: its power when on, learnt, and its faults.

Readings (one message per report): `power_w` (active power), `energy_kwh` (of the interval),
`voltage_v`, `circuit_<n>_on` (1 on, 0 off, per channel) and `dimming_pct` (0-100, where the
controller dims). The controller is on when any channel is on (or, without channel states,
when it draws at least `ON_MIN_W`).

What it learns, per dimming level (in steps of `LEVEL_STEP` %): the power when on, as a fading
mean (`river.stats.EWMean`) of the readings judged normal, and a reference (`river.stats.Mean`)
of its first `REFERENCE` of readings at that level, which drifts are measured against. A level
is trusted (raises alerts) after `MIN_LEARNT` of readings at it: a cold model says nothing,
and a step of a failed lamp's size before then starts the level's learning again.

Kinds of alert (`lighting.<kind>`), each an episode (shared/runtime/episodes.py):
- `lighting.lamp_failure`: on, and drawing at least max(`FAILURE_LAMPS` of one lamp,
  `FAILURE_FRACTION` of the learnt power) less than learnt, for `FAILURE_AFTER`;
- `lighting.daylight`: on in plain daylight (sunrise + tolerance to sunset - tolerance);
- `lighting.schedule`: at night, on while the council's schedule switches it off, not dimmed
  while it asks for dimming, or off while it asks for light;
- `lighting.drift`: the learnt power has moved by `DRIFT_FRACTION` or more from its reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from river import stats

from shared.night import Town
from shared.runtime.cadence import Cadence
from shared.runtime.checkpoints import Upgradable
from shared.runtime.episodes import EpisodeTracker, alert, row_of, watch_silence
from shared.runtime.processor import Effects
from shared.schemas import Reading, Severity
from shared.topics import Domain

POWER, ENERGY, VOLTAGE, DIMMING = "power_w", "energy_kwh", "voltage_v", "dimming_pct"
CHANNEL = re.compile(r"^circuit_(\d{1,2})_on$")
ON_MIN_W = 5.0
LEVEL_STEP = 10
FULL = 100
# The fading mean's weight of a new reading: about the last 20 readings at a level.
FADING = 0.05
MIN_LEARNT = timedelta(hours=2)
REFERENCE = timedelta(hours=12)
FAILURE_FRACTION = 0.03
# One lamp's power unless the town says (TOWNPULSE_LIGHTING_LAMP_W): an LED street lamp.
LAMP_W = 60.0
# "About one lamp": three quarters of its rated power, so that mains noise and a lamp drawing a
# little under its rating do not hide the failure (nor half a lamp's flicker raise one).
FAILURE_LAMPS = 0.75
FAILURE_AFTER = timedelta(minutes=30)
DAYLIGHT_AFTER = timedelta(minutes=30)
SCHEDULE_AFTER = timedelta(minutes=30)
DRIFT_FRACTION = 0.10
DRIFT_AFTER = timedelta(hours=2)
CLOSE_AFTER = timedelta(minutes=30)
# A dimmed circuit may draw a little more than its dimming level's share (drivers' losses).
DIM_MARGIN = 0.10
KINDS = ("lighting.lamp_failure", "lighting.daylight", "lighting.schedule", "lighting.drift")
# Kinds judged on the power drawn when lit.
BY_POWER = ("lighting.lamp_failure", "lighting.drift")
OPEN_AFTER = {
    "lighting.lamp_failure": FAILURE_AFTER,
    "lighting.daylight": DAYLIGHT_AFTER,
    "lighting.schedule": SCHEDULE_AFTER,
    "lighting.drift": DRIFT_AFTER,
}


@dataclass(frozen=True, slots=True)
class LightingRow:
    """One report, with what the model expected and the night's all-night baseline."""

    device_id: str
    ts: datetime
    is_on: bool
    power_w: float | None
    energy_kwh: float | None
    voltage_v: float | None
    dimming_pct: float | None
    expected_w: float | None
    # The interval's energy had it been lit at full power (learnt), from dusk to dawn; None by
    # day or before the full power is learnt. Savings are this minus `energy_kwh`.
    baseline_kwh: float | None
    kind: str | None


@dataclass(frozen=True, slots=True)
class CircuitRow:
    """The circuit now (one row per device, upserted)."""

    device_id: str
    ts: datetime
    is_on: bool
    dimming_pct: float | None
    power_w: float | None
    learnt_w: dict[str, float]
    channels: dict[str, bool]


@dataclass
class Level:
    """What is learnt of one dimming level."""

    power: stats.EWMean = field(default_factory=lambda: stats.EWMean(fading_factor=FADING))
    reference: stats.Mean = field(default_factory=stats.Mean)
    count: int = 0


@dataclass
class CircuitState(Upgradable):
    levels: dict[int, Level] = field(default_factory=dict)
    trackers: dict[str, EpisodeTracker] = field(
        default_factory=lambda: {
            k: EpisodeTracker(k, open_after=OPEN_AFTER[k], close_after=CLOSE_AFTER) for k in KINDS
        }
    )
    cadence: Cadence = field(default_factory=Cadence)

    def learnt(self, level: int) -> float | None:
        """The level's learnt power once trusted, else None."""
        lv = self.levels.get(level)
        if lv is None or lv.count < self.cadence.readings(MIN_LEARNT):
            return None
        return float(lv.power.get())

    def _upgrade(self, old: dict[str, object]) -> None:
        for kind, tracker in self.trackers.items():
            tracker.retime(open_after=OPEN_AFTER[kind], close_after=CLOSE_AFTER)


def level_of(dimming: float | None) -> int:
    """The learnt level a dimming percentage falls in (full power without dimming).

    >>> level_of(None), level_of(48), level_of(100), level_of(3)
    (100, 50, 100, 10)
    """
    if dimming is None:
        return FULL
    return max(LEVEL_STEP, min(FULL, round(dimming / LEVEL_STEP) * LEVEL_STEP))


class LightingProcessor:
    """The runtime's `DeviceProcessor` for lighting cabinets and circuit controllers."""

    model_version = "lighting-circuit/1"

    def __init__(self, *, town: Town, lamp_w: float = LAMP_W) -> None:
        self.town = town
        self.lamp_w = lamp_w
        # Another town, schedule or lamp size: the learnt powers still hold, but the version
        # names them so the register shows what runs.
        self.model_version = f"{type(self).model_version}@{town.zone}"

    def new_state(self, device_id: str) -> CircuitState:
        return CircuitState()

    def learning_until(self, state: CircuitState) -> datetime | None:
        """While the full-power level is not trusted yet, roughly when it will be: the dawn
        ending the night that gives it its missing readings (it learns only when lit)."""
        last = state.cadence.last_ts
        if last is None or state.learnt(FULL) is not None:
            return None
        lv = state.levels.get(FULL)
        missing = state.cadence.readings(MIN_LEARNT) - (lv.count if lv else 0)
        ready = last + missing * state.cadence.interval
        day = self.town.local(last).date()
        for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
            plan = self.town.plan(d)
            if plan is not None and plan.dawn > ready and plan.dusk + (ready - last) <= plan.dawn:
                return max(plan.dawn, ready)
        return ready

    def process(self, state: CircuitState, *, device_id: str, readings: list[Reading]) -> Effects:
        out = Effects()
        by_ts: dict[datetime, dict[str, float]] = {}
        for r in readings:
            by_ts.setdefault(r.ts, {})[r.metric] = r.value
        for ts in sorted(by_ts):
            watch_silence(
                device_id=device_id,
                domain=Domain.LIGHTING,
                kind="lighting.controller_silent",
                ts=ts,
                cadence=state.cadence,
                events=out.events,
                rows=out.rows,
            )
            self._one(state, device_id, ts, by_ts[ts], out)
        return out

    def flags(
        self, s: CircuitState, ts: datetime, *, on: bool, power: float | None, dimming: float | None
    ) -> tuple[dict[str, bool], dict[str, Any]]:
        """Each kind's verdict on one reading, and what explains it."""
        level = level_of(dimming)
        learnt = s.learnt(level)
        flags = dict.fromkeys(KINDS, False)
        why: dict[str, Any] = {"on": on, "power_w": power, "dimming_pct": dimming}
        if learnt is not None:
            why["learnt_w"] = round(learnt, 1)
        if on and power is not None and learnt is not None:
            drop = learnt - power
            flags["lighting.lamp_failure"] = drop >= self.step(learnt)
            why["drop_w"] = round(drop, 1)
            lv = s.levels[level]
            if lv.count >= s.cadence.readings(REFERENCE):
                ref = float(lv.reference.get())
                why["reference_w"] = round(ref, 1)
                flags["lighting.drift"] = (
                    not flags["lighting.lamp_failure"] and abs(learnt - ref) >= DRIFT_FRACTION * ref
                )
        flags["lighting.daylight"] = on and self.town.daylight(ts)
        if self.town.dark(ts):
            mode = self.town.mode(ts)
            why["scheduled"] = mode
            if mode == "off":
                flags["lighting.schedule"] = on
            elif mode == "full":
                flags["lighting.schedule"] = not on
            elif on:
                flags["lighting.schedule"] = self._undimmed(s, power=power, dimming=dimming)
        return flags, why

    def step(self, learnt: float) -> float:
        """The smallest drop of power from `learnt` that is a failed lamp."""
        return max(FAILURE_LAMPS * self.lamp_w, FAILURE_FRACTION * learnt)

    def _undimmed(self, s: CircuitState, *, power: float | None, dimming: float | None) -> bool:
        limit = self.town.dim_pct + DIM_MARGIN * 100
        if dimming is not None:
            return dimming > limit
        full = s.learnt(FULL)
        return power is not None and full is not None and power > full * limit / 100

    def _one(
        self, s: CircuitState, device_id: str, ts: datetime, m: dict[str, float], out: Effects
    ) -> None:
        power, dimming = m.get(POWER), m.get(DIMMING)
        channels = {
            match.group(1): v > 0 for k, v in m.items() if (match := CHANNEL.match(k)) is not None
        }
        on = any(channels.values()) if channels else (power is not None and power >= ON_MIN_W)
        interval_h = s.cadence.interval / timedelta(hours=1)
        energy = m.get(ENERGY)
        if energy is None and power is not None:
            energy = power * interval_h / 1000
        flags, why = self.flags(s, ts, on=on, power=power, dimming=dimming)
        full = s.learnt(FULL)
        baseline = full * interval_h / 1000 if full is not None and self.town.night(ts) else None
        level = level_of(dimming)
        kind = next((k for k in KINDS if flags[k]), None)
        out.rows.append(
            LightingRow(
                device_id,
                ts,
                on,
                power,
                energy,
                m.get(VOLTAGE),
                dimming,
                s.learnt(level) if on else 0.0,
                baseline,
                kind,
            )
        )
        for k, tracker in s.trackers.items():
            if k in BY_POWER and not on:
                # A switched-off circuit says nothing of its lamps: a failure or a drift stays
                # open through the day, until a night shows the power back.
                continue
            was_active = tracker.active
            phase = tracker.update(
                ts,
                flagged=flags[k],
                interval=s.cadence.interval,
                severity=Severity.WARNING,
                peak=float(why.get("drop_w") or 0.0),
                explanation=why,
            )
            ep = tracker.last
            if ep is None or not (phase or (was_active and flags[k])):
                continue
            out.rows.append(row_of(device_id, ep))
            if phase is not None:
                what = k.removeprefix("lighting.").replace("_", " ")
                message = f"{what}: {power} W" if phase == "start" else f"{what} over"
                out.events.append(
                    alert(
                        device_id=device_id,
                        domain=Domain.LIGHTING,
                        ep=ep,
                        phase=phase,
                        ts=ts,
                        explanation={**why, "message": message},
                    )
                )
        # A failing circuit's power is not learnt as its normal power (a lamp's drop would be
        # absorbed before the alert opened); a drift is the learnt power moving, so it is.
        if on and power is not None and not flags["lighting.lamp_failure"]:
            lv = s.levels.setdefault(level, Level())
            mean = float(lv.power.get())
            if lv.count and s.learnt(level) is None and abs(power - mean) >= self.step(mean):
                # Not settled yet (lamps still being fitted, a failure in the first hours): a
                # step this large starts the level's learning again rather than blending in.
                lv = s.levels[level] = Level()
            lv.power.update(power)
            if lv.count < s.cadence.readings(REFERENCE):
                lv.reference.update(power)
            lv.count += 1
        out.rows.append(
            CircuitRow(
                device_id,
                ts,
                on,
                dimming,
                power,
                {str(k): round(float(v.power.get()), 2) for k, v in sorted(s.levels.items())},
                channels,
            )
        )
