"""Labelled events: injected faults and happenings, with the ground truth of when and where."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from townpulse.simulator.calendar_fr import to_local
from townpulse.simulator.town import BuildingKind, Device, Domain, MeterSpec, Town, Zone

STEP = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What an event kind applies to and how long it usually lasts."""

    domain: Domain
    min_duration: timedelta
    max_duration: timedelta
    description: str
    # A happening the town itself organises (its own extra market), not a fault: the alerts it
    # explains (bins filling faster, busier roads) are not false, but an operator is owed none
    # (bench/simulated_town.py leaves it out of recall).
    context: bool = False


EVENT_SPECS: dict[str, EventSpec] = {
    "meter_left_on": EventSpec(
        Domain.ENERGY,
        timedelta(hours=12),
        timedelta(hours=48),
        "consumption at night or on holidays as on a working day",
    ),
    "meter_step_up": EventSpec(
        Domain.ENERGY, timedelta(hours=6), timedelta(hours=36), "sudden constant extra load (fault)"
    ),
    "meter_stuck": EventSpec(
        Domain.ENERGY, timedelta(hours=3), timedelta(hours=12), "meter repeats the same value"
    ),
    "meter_silent": EventSpec(
        Domain.ENERGY, timedelta(hours=1), timedelta(hours=6), "meter stops reporting"
    ),
    "bin_fast_fill": EventSpec(
        Domain.WASTE,
        timedelta(hours=3),
        timedelta(hours=10),
        "illegal dumping or abnormally fast filling",
    ),
    "bin_fire": EventSpec(
        Domain.WASTE, timedelta(minutes=30), timedelta(hours=2), "temperature jump inside the bin"
    ),
    "bin_stuck": EventSpec(
        Domain.WASTE, timedelta(hours=12), timedelta(hours=36), "fill sensor repeats the same value"
    ),
    "road_incident": EventSpec(
        Domain.TRAFFIC,
        timedelta(minutes=30),
        timedelta(hours=3),
        "accident or works: flow and speed drop",
    ),
    # Lighting faults last over a day: each must span the part of the day or night that shows
    # it (a night's full-power hours, a whole daylight), wherever in the day it starts.
    "lamp_failure": EventSpec(
        Domain.LIGHTING,
        timedelta(hours=26),
        timedelta(hours=48),
        "one lamp of a lighting cabinet out: its power drops by one lamp's",
    ),
    "lighting_daylight": EventSpec(
        Domain.LIGHTING,
        timedelta(hours=26),
        timedelta(hours=40),
        "stuck contactor: a cabinet's lights on in daylight",
    ),
    "lighting_schedule": EventSpec(
        Domain.LIGHTING,
        timedelta(hours=26),
        timedelta(hours=36),
        "controller lost its programme: the council's switch-off and dimming hours ignored",
    ),
    "lighting_drift": EventSpec(
        Domain.LIGHTING,
        timedelta(hours=40),
        timedelta(hours=48),
        "leak to earth: 25 % more power on every level, for nights on end",
    ),
    "market_day": EventSpec(
        Domain.WASTE,
        timedelta(hours=5),
        timedelta(hours=7),
        "extra market: centre bins fill faster, centre traffic busier",
        context=True,
    ),
}
EVENT_KINDS: tuple[str, ...] = tuple(EVENT_SPECS)
# The kinds an operator should be alerted about (the others are context).
FAULT_KINDS: frozenset[str] = frozenset(k for k, s in EVENT_SPECS.items() if not s.context)
MARKET_START_HOUR = 7


@dataclass(frozen=True, slots=True)
class LabelledEvent:
    """An injected event over the half-open window [start, end).

    `device_id` is None for a town-wide event (only `market_day`), which then applies to every
    device that `affects` selects.
    """

    kind: str
    device_id: str | None
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.kind not in EVENT_SPECS:
            raise ValueError(f"unknown event kind {self.kind!r}; known: {', '.join(EVENT_KINDS)}")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("event times must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("event must end after it starts")

    def covers(self, ts: datetime) -> bool:
        """Whether the reading stamped `ts` falls inside the event."""
        return self.start <= ts < self.end

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, times as RFC 3339 UTC strings.

        >>> LabelledEvent("bin_fire", "bin-001", datetime(2026, 3, 2, 8, tzinfo=UTC),
        ...               datetime(2026, 3, 2, 9, tzinfo=UTC)).to_json()["start"]
        '2026-03-02T08:00:00Z'
        """
        return {
            "kind": self.kind,
            "device_id": self.device_id,
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
        }


def rfc3339(ts: datetime) -> str:
    """Format an aware instant as RFC 3339 in UTC with a `Z` suffix.

    >>> rfc3339(datetime(2026, 3, 2, 8, 15, tzinfo=UTC))
    '2026-03-02T08:15:00Z'
    """
    if ts.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def affects(event: LabelledEvent, device: Device) -> bool:
    """Whether `event` acts on `device`."""
    if event.device_id is not None:
        return event.device_id == device.id
    # A town-wide market concerns the market square, the centre and the centre's roads.
    zone = getattr(device.spec, "zone", None)
    return event.kind == "market_day" and zone in (Zone.MARKET, Zone.CENTRE)


def parse_kinds(text: str) -> list[str]:
    """Parse a comma-separated list of event kinds; `all` means one of each.

    >>> parse_kinds("bin_fire, road_incident,bin_fire")
    ['bin_fire', 'road_incident', 'bin_fire']
    >>> parse_kinds("") == [] and parse_kinds("all") == list(EVENT_KINDS)
    True
    """
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if kinds == ["all"]:
        return list(EVENT_KINDS)
    unknown = sorted(set(kinds) - set(EVENT_SPECS))
    if unknown:
        raise ValueError(
            f"unknown event kind(s) {', '.join(unknown)}; known: {', '.join(EVENT_KINDS)}"
        )
    return kinds


def floor_to_step(ts: datetime, step: timedelta = STEP) -> datetime:
    """Round an aware instant down to a multiple of `step` since the Unix epoch.

    >>> floor_to_step(datetime(2026, 3, 2, 8, 14, 59, tzinfo=UTC)).isoformat()
    '2026-03-02T08:00:00+00:00'
    """
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((ts - epoch) // step) * step


def _candidates(town: Town, kind: str) -> list[Device]:
    devices = list(town.of(EVENT_SPECS[kind].domain))
    if kind == "meter_left_on":
        # Homes are always "on"; the event is meaningful for public and business buildings.
        others = [
            d
            for d in devices
            if isinstance(d.spec, MeterSpec) and d.spec.building is not BuildingKind.HOUSING
        ]
        return others or devices
    if kind == "bin_fire":
        # An EM310-UDL measures distance only: a fire in its bin would show on no reading.
        with_temperature = [d for d in devices if d.lorawan is None]
        return with_temperature or devices
    return devices


def _market_starts(start: datetime, latest: datetime, step: timedelta) -> list[datetime]:
    t = floor_to_step(start, step)
    found = []
    while t <= latest:
        local = to_local(t)
        if t >= start and local.hour == MARKET_START_HOUR and local.minute == 0:
            found.append(t)
        t += step
    return found


def schedule_events(
    town: Town,
    *,
    kinds: Iterable[str],
    start: datetime,
    end: datetime,
    seed: int,
    step: timedelta = STEP,
) -> list[LabelledEvent]:
    """Draw one event per entry of `kinds` inside [start, end), deterministically.

    Each event lasts a random, step-aligned duration typical of its kind (clipped to the
    window), on a random device of the right domain, preferring devices not yet used.
    `market_day` is town-wide and opens at 07:00 local time when the window allows it.

    Parameters
    ----------
    town
        Devices to choose from.
    kinds
        Event kinds; repeat a kind to get several events of it.
    start, end
        Window the events must fit in.
    seed
        Same seed, town and arguments give the same events.
    step
        Events start and end on multiples of it.

    Returns
    -------
    list[LabelledEvent]
        Sorted by start time.
    """
    if end <= start:
        raise ValueError("end must be after start")
    rng = random.Random(f"events:{seed}")
    used: set[str] = set()
    events = []
    for kind in kinds:
        spec = EVENT_SPECS[kind]
        window = end - start
        low = min(spec.min_duration, window)
        high = min(spec.max_duration, window)
        duration = max(step, floor_to_step_delta(low + (high - low) * rng.random(), step))
        latest = end - duration
        device_id: str | None = None
        if kind == "market_day":
            starts = _market_starts(start, latest, step)
            begin = rng.choice(starts) if starts else _random_start(rng, start, latest, step)
        else:
            pool = _candidates(town, kind)
            if not pool:
                raise ValueError(f"the town has no device for {kind!r}")
            fresh = [d for d in pool if d.id not in used] or pool
            device_id = rng.choice(fresh).id
            used.add(device_id)
            begin = _random_start(rng, start, latest, step)
        events.append(LabelledEvent(kind, device_id, begin, min(end, begin + duration)))
    return sorted(events, key=lambda e: (e.start, e.kind, e.device_id or ""))


def floor_to_step_delta(delta: timedelta, step: timedelta) -> timedelta:
    """Round a duration down to a whole number of steps.

    >>> floor_to_step_delta(timedelta(minutes=44), timedelta(minutes=15))
    datetime.timedelta(seconds=1800)
    """
    return (delta // step) * step


def _random_start(
    rng: random.Random, start: datetime, latest: datetime, step: timedelta
) -> datetime:
    first = floor_to_step(start, step)
    if first < start:
        first += step
    slots = max(0, (latest - first) // step)
    return first + rng.randint(0, slots) * step if latest >= first else start


def active_kinds(events: Sequence[LabelledEvent], ts: datetime) -> frozenset[str]:
    """Kinds of the events (already filtered to one device) that cover `ts`."""
    return frozenset(e.kind for e in events if e.covers(ts))
