"""Road traffic: vehicle counts with rush hours and weekend shapes, and the mean speed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from townpulse.simulator import noise
from townpulse.simulator.calendar_fr import DayType, day_type, local_hour, to_local
from townpulse.simulator.profiles import interp_daily
from townpulse.simulator.town import CounterSpec, Zone

# Share of the road's capacity used, by local hour (0..24).
_FLOW: dict[DayType, tuple[float, ...]] = {
    DayType.WORKDAY: (
        0.05,
        0.03,
        0.02,
        0.02,
        0.03,
        0.08,
        0.3,
        0.75,
        0.9,
        0.6,
        0.45,
        0.45,
        0.55,
        0.55,
        0.45,
        0.5,
        0.65,
        0.85,
        0.88,
        0.6,
        0.35,
        0.25,
        0.18,
        0.12,
        0.05,
    ),
    DayType.SATURDAY: (
        0.08,
        0.06,
        0.04,
        0.03,
        0.03,
        0.04,
        0.08,
        0.15,
        0.3,
        0.45,
        0.55,
        0.6,
        0.6,
        0.55,
        0.55,
        0.6,
        0.6,
        0.6,
        0.55,
        0.45,
        0.35,
        0.25,
        0.2,
        0.15,
        0.08,
    ),
    DayType.SUNDAY: (
        0.08,
        0.06,
        0.05,
        0.03,
        0.02,
        0.03,
        0.05,
        0.08,
        0.15,
        0.25,
        0.35,
        0.4,
        0.4,
        0.35,
        0.35,
        0.4,
        0.42,
        0.42,
        0.4,
        0.35,
        0.28,
        0.2,
        0.14,
        0.1,
        0.06,
    ),
}
FLOW_NOISE_REL = 0.08
SPEED_NOISE_KMH = 2.5
# Above free flow at night: drivers speed up on empty roads.
NIGHT_SPEEDING = 1.05
CONGESTION_SLOWDOWN = 0.45
INCIDENT_FLOW_FACTOR = 0.35
INCIDENT_SPEED_FACTOR = 0.3
MARKET_FLOW_FACTOR = 1.3
MARKET_SPEED_FACTOR = 0.75


def flow_share(spec: CounterSpec, *, ts: datetime) -> float:
    """Expected vehicles as a share of capacity around instant `ts` (local time rules).

    >>> from datetime import UTC
    >>> spec = CounterSpec("Rue Royale", Zone.CENTRE, 120, 30.0)
    >>> rush = flow_share(spec, ts=datetime(2026, 3, 3, 7, tzinfo=UTC))  # 08:00 Paris
    >>> night = flow_share(spec, ts=datetime(2026, 3, 3, 2, tzinfo=UTC))
    >>> night < 0.1 < 0.8 < rush
    True
    """
    local = to_local(ts)
    dt = day_type(local.date())
    share = interp_daily(_FLOW[dt], local_hour(local))
    if spec.zone is Zone.TOURIST and dt is not DayType.WORKDAY:
        share *= 1.4 if local.month in (6, 7, 8) else 1.15
    return share


def vehicles(
    spec: CounterSpec,
    *,
    key: Sequence[object],
    ts: datetime,
    step: timedelta,
    incident: bool = False,
    market_day: bool = False,
) -> int:
    """Vehicles counted during the interval ending at `ts`.

    Parameters
    ----------
    spec
        The counter's road.
    key
        Noise stream (seed, device id).
    ts
        End of the interval.
    step
        Interval length; capacity is given per 15 minutes and scaled to it.
    incident
        Accident or road works (event `road_incident`): the flow drops.
    market_day
        An extra market (event `market_day`) draws more cars to the centre.
    """
    epoch = int(ts.timestamp())
    capacity = spec.capacity_per_step * (step / timedelta(minutes=15))
    mean = capacity * flow_share(spec, ts=ts - step / 2)
    if incident:
        mean *= INCIDENT_FLOW_FACTOR
    if market_day:
        mean *= MARKET_FLOW_FACTOR
    # Relative jitter (weather, events) plus count noise of a Poisson process.
    count = mean * (1.0 + FLOW_NOISE_REL * noise.gauss(*key, "flow", epoch))
    count += math.sqrt(max(mean, 0.0)) * noise.gauss(*key, "count", epoch)
    return max(0, round(count))


def mean_speed_kmh(
    spec: CounterSpec,
    *,
    key: Sequence[object],
    ts: datetime,
    step: timedelta,
    count: int,
    incident: bool = False,
    market_day: bool = False,
) -> float | None:
    """Mean speed of the vehicles counted, or None when no vehicle passed.

    >>> from datetime import UTC
    >>> spec = CounterSpec("Rocade Nord", Zone.RESIDENTIAL, 500, 80.0)
    >>> ts = datetime(2026, 3, 3, 2, tzinfo=UTC)
    >>> fast = mean_speed_kmh(spec, key=(1,), ts=ts, step=timedelta(minutes=15), count=20)
    >>> slow = mean_speed_kmh(spec, key=(1,), ts=ts, step=timedelta(minutes=15), count=500)
    >>> slow is not None and fast is not None and slow < fast
    True
    """
    if count == 0:
        return None
    load = min(1.2, count / (spec.capacity_per_step * step / timedelta(minutes=15)))
    speed = spec.free_speed_kmh * (NIGHT_SPEEDING - CONGESTION_SLOWDOWN * load**2)
    if incident:
        speed *= INCIDENT_SPEED_FACTOR
    if market_day:
        speed *= MARKET_SPEED_FACTOR
    speed += SPEED_NOISE_KMH * noise.gauss(*key, "speed", int(ts.timestamp()))
    return round(max(3.0, speed), 1)
