"""Public lighting cabinets: their circuits follow the sun and the council's schedule.

Each cabinet (an "armoire d'éclairage public" with a circuit controller) feeds `lamps` street
lamps of `lamp_w` watts on one or two circuits. Its astronomical clock switches the circuits on
at sunset and off at sunrise, at the town's coordinates; the council's schedule switches them
off or dims them at night. Both come from `shared.night.ScheduleSettings` (the environment the
lighting service reads too), so a healthy cabinet does what the service expects of it.

It reports what a metering controller does every interval: `power_w` (active power at the
reading's time), `energy_kwh` (of the interval), `voltage_v`, `circuit_<n>_on` (1 on, 0 off)
and `dimming_pct` (its dimming output, 0 when off).

Labelled events (townpulse/simulator/events.py):
- `lamp_failure`: one lamp out (its driver or fuse): the cabinet draws one lamp's power less;
- `lighting_daylight`: a stuck contactor: the circuits stay on at full power, day and night;
- `lighting_schedule`: the controller lost its programme: full power all night, whatever the
  council's hours (or, in a town without any, dark from midnight to sunrise);
- `lighting_drift`: a leak to earth growing: 25 % more power on every level (what the service
  sees as a drift once its fading mean has moved, over a night or two of lit hours).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.night import Town as Schedule
from townpulse.simulator import noise
from townpulse.simulator.town import LightSpec

# Mains voltage: 230 V nominal, a few volts either way through the night.
NOMINAL_V = 230.0
# A dimmed LED driver draws a little more than its output's share (its own losses): well inside
# the lighting service's margin (10 points).
DIM_LOSS = 0.04
# Mains noise on the power drawn, relative: far below one lamp of the smallest cabinet.
POWER_NOISE = 0.003
DRIFT = 0.25


def metrics(
    spec: LightSpec,
    schedule: Schedule,
    *,
    key: tuple[int, str],
    ts: datetime,
    step: timedelta,
    kinds: frozenset[str] | set[str],
) -> dict[str, float]:
    """The cabinet's report for the interval ending at `ts`, under the active event `kinds`."""
    level = _level(schedule, ts, kinds)
    full_w = spec.lamps * spec.lamp_w
    if "lamp_failure" in kinds:
        full_w -= spec.lamp_w
    if "lighting_drift" in kinds:
        full_w *= 1 + DRIFT
    power = 0.0
    if level > 0:
        share = 1.0 if level >= 100 else level / 100 * (1 + DIM_LOSS)
        power = full_w * share * (1 + POWER_NOISE * noise.gauss(*key, "power", ts.timestamp()))
    voltage = NOMINAL_V + 2.5 * noise.smooth(*key, "voltage", x=ts.timestamp(), period=3 * 3600)
    out = {
        "power_w": round(power, 1),
        "energy_kwh": round(power * (step / timedelta(hours=1)) / 1000, 4),
        "voltage_v": round(voltage, 1),
        "dimming_pct": float(level),
    }
    for n in range(1, spec.circuits + 1):
        out[f"circuit_{n}_on"] = 1.0 if level > 0 else 0.0
    return out


def _level(schedule: Schedule, ts: datetime, kinds: frozenset[str] | set[str]) -> float:
    """The dimming output at `ts`: 100 full, the council's dimming level, or 0 off."""
    if "lighting_daylight" in kinds:
        return 100.0
    if not schedule.night(ts):
        return 0.0
    if "lighting_schedule" in kinds:
        if schedule.off is None and schedule.dim is None:
            sun = schedule.sun(schedule.local(ts).date())
            return 0.0 if sun is not None and ts < sun[0] else 100.0
        return 100.0
    mode = schedule.mode(ts)
    if mode == "off":
        return 0.0
    return schedule.dim_pct if mode == "dim" else 100.0
