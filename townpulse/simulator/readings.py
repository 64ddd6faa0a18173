"""Turn a town and its events into a time-ordered stream of readings, without any I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from shared.night import ScheduleSettings
from shared.night import Town as Schedule
from townpulse.simulator import energy, lighting, traffic, waste
from townpulse.simulator.events import STEP, LabelledEvent, affects, floor_to_step, rfc3339
from townpulse.simulator.town import (
    BinSpec,
    CounterSpec,
    Device,
    Domain,
    LightSpec,
    MeterSpec,
    Town,
)
from townpulse.simulator.weather import outdoor_temp_c

DEFAULT_GLITCH_RATE = 0.001
Metrics = dict[str, float]


class Reading(NamedTuple):
    """One message of one device: metrics for the interval ending at `ts`."""

    device: Device
    ts: datetime
    metrics: Metrics


@dataclass(slots=True)
class _State:
    fill: float | None = None  # a bin's true fill level
    frozen: float | None = None  # value a stuck sensor keeps repeating


def iter_readings(
    town: Town,
    *,
    start: datetime,
    end: datetime | None,
    step: timedelta = STEP,
    events: Iterable[LabelledEvent] = (),
    glitch_rate: float = DEFAULT_GLITCH_RATE,
    schedule: Schedule | None = None,
) -> Iterator[Reading]:
    """Simulate every device of `town`, one step at a time.

    Parameters
    ----------
    town
        The devices.
    start
        Aware instant; the first timestamp is the first multiple of `step` (since the Unix
        epoch) at or after it.
    end
        Exclusive end, or None to go on forever.
    step
        Reporting interval of every device.
    events
        Labelled events to apply.
    glitch_rate
        Probability that a bin reading is a sensor glitch (0 or 100).
    schedule
        The sun and the council's lighting schedule the lighting cabinets follow; by default
        the one the lighting service reads from the environment (shared.night.ScheduleSettings).

    Yields
    ------
    Reading
        Ordered by timestamp, then in town order. Devices that are silent (event
        `meter_silent`) yield nothing inside the event.

    Examples
    --------
    >>> from datetime import UTC
    >>> from townpulse.simulator.town import build_town
    >>> town = build_town(energy=1, waste=1, traffic=1, lighting=1, seed=3)
    >>> t0 = datetime(2026, 3, 2, 8, 7, tzinfo=UTC)
    >>> out = list(iter_readings(town, start=t0, end=t0 + timedelta(minutes=30)))
    >>> [(r.device.id, r.ts.strftime("%H:%M")) for r in out]  # doctest: +NORMALIZE_WHITESPACE
    [('meter-001', '08:15'), ('bin-001', '08:15'), ('counter-001', '08:15'),
     ('cabinet-001', '08:15'),
     ('meter-001', '08:30'), ('bin-001', '08:30'), ('counter-001', '08:30'),
     ('cabinet-001', '08:30')]
    """
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        raise ValueError("start and end must be timezone-aware")
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    ts = floor_to_step(start, step)
    if ts < start:
        ts += step
    all_events = list(events)
    by_device = {d.id: [e for e in all_events if affects(e, d)] for d in town}
    states = {d.id: _State() for d in town}
    if schedule is None and town.of(Domain.LIGHTING):
        schedule = ScheduleSettings().town()
    while end is None or ts < end:
        outdoor = outdoor_temp_c(ts - step / 2, seed=town.seed)
        for device in town:
            active = [e for e in by_device[device.id] if e.covers(ts)]
            metrics = _simulate(
                device,
                states[device.id],
                ts=ts,
                step=step,
                seed=town.seed,
                outdoor_c=outdoor,
                active=active,
                glitch_rate=glitch_rate,
                schedule=schedule,
            )
            if metrics is not None:
                yield Reading(device, ts, metrics)
        ts += step


def _simulate(
    device: Device,
    state: _State,
    *,
    ts: datetime,
    step: timedelta,
    seed: int,
    outdoor_c: float,
    active: list[LabelledEvent],
    glitch_rate: float,
    schedule: Schedule | None,
) -> Metrics | None:
    kinds = {e.kind for e in active}
    key = (seed, device.id)
    spec = device.spec
    if isinstance(spec, MeterSpec):
        kwh = energy.meter_energy_kwh(
            spec,
            key=key,
            ts=ts,
            step=step,
            outdoor_c=outdoor_c,
            left_on="meter_left_on" in kinds,
            step_up="meter_step_up" in kinds,
        )
        if "meter_silent" in kinds:
            return None
        return {"energy_kwh": _hold(state, kwh, stuck="meter_stuck" in kinds)}
    if isinstance(spec, BinSpec):
        if state.fill is None:
            state.fill = waste.initial_fill(spec, key=key, ts=ts - step)
        state.fill = waste.next_fill(
            spec,
            state.fill,
            key=key,
            ts=ts,
            step=step,
            market_day="market_day" in kinds,
            fast_fill="bin_fast_fill" in kinds,
        )
        fire = next((e.start for e in active if e.kind == "bin_fire"), None)
        reported = waste.reported_fill(state.fill, key=key, ts=ts, glitch_rate=glitch_rate)
        return {
            "fill_pct": _hold(state, reported, stuck="bin_stuck" in kinds),
            "temperature_c": waste.bin_temperature_c(
                spec, key=key, ts=ts, outdoor_c=outdoor_c, fill=state.fill, fire_since=fire
            ),
        }
    if isinstance(spec, LightSpec):
        assert schedule is not None
        return lighting.metrics(spec, schedule, key=key, ts=ts, step=step, kinds=kinds)
    assert isinstance(spec, CounterSpec)
    incident = "road_incident" in kinds
    market = "market_day" in kinds
    count = traffic.vehicles(spec, key=key, ts=ts, step=step, incident=incident, market_day=market)
    metrics: Metrics = {"vehicles": count}
    speed = traffic.mean_speed_kmh(
        spec, key=key, ts=ts, step=step, count=count, incident=incident, market_day=market
    )
    if speed is not None:
        metrics["speed_kmh"] = speed
    return metrics


def _hold(state: _State, value: float, *, stuck: bool) -> float:
    # A stuck sensor keeps the last value it reported before it got stuck.
    if not stuck:
        state.frozen = value
        return value
    if state.frozen is None:
        state.frozen = value
    return state.frozen


def to_payload(ts: datetime, metrics: Metrics) -> bytes:
    """Encode one reading as the flat JSON object the gateway expects.

    >>> from datetime import UTC
    >>> to_payload(datetime(2026, 3, 2, 8, 15, tzinfo=UTC), {"fill_pct": 63.5})
    b'{"ts":"2026-03-02T08:15:00Z","fill_pct":63.5}'
    """
    return json.dumps({"ts": rfc3339(ts), **metrics}, separators=(",", ":")).encode()


def to_pack(readings: Sequence[Reading]) -> bytes:
    """Encode one device's readings as a SenML pack (RFC 8428): base time the first reading's,
    each record's time relative to it, the metric as its name.

    >>> from datetime import UTC
    >>> from townpulse.simulator.town import build_town
    >>> bin_ = build_town(energy=0, waste=1, traffic=0, seed=1).devices[0]
    >>> t0 = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
    >>> to_pack([Reading(bin_, t0, {"fill_pct": 63.5}),
    ...          Reading(bin_, t0 + timedelta(minutes=15), {"fill_pct": 64.0})])
    b'[{"bt":1772439300,"n":"fill_pct","v":63.5},{"t":900,"n":"fill_pct","v":64.0}]'
    """
    base = int(readings[0].ts.timestamp())
    records: list[dict[str, object]] = []
    for reading in readings:
        offset = int(reading.ts.timestamp()) - base
        for metric, value in reading.metrics.items():
            record: dict[str, object] = {"bt": base} if not records else {}
            if offset:
                record["t"] = offset
            records.append({**record, "n": metric, "v": value})
    return json.dumps(records, separators=(",", ":")).encode()


def to_message(readings: Sequence[Reading]) -> bytes:
    """One MQTT message for one device's readings: a flat JSON object for one, a SenML pack
    for several (the gateway takes both on the same topic)."""
    if len(readings) == 1:
        return to_payload(readings[0].ts, readings[0].metrics)
    return to_pack(readings)
