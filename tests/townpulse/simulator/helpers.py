"""Small hand-made towns and helpers for the simulator tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from townpulse.simulator.events import LabelledEvent
from townpulse.simulator.readings import Metrics, iter_readings
from townpulse.simulator.town import (
    BinSpec,
    BuildingKind,
    CounterSpec,
    Device,
    Domain,
    MeterSpec,
    Town,
    Zone,
)

LAT, LON = 45.9, 6.12

OFFICE = Device(
    "meter-001",
    Domain.ENERGY,
    "Bureaux",
    LAT,
    LON,
    MeterSpec(BuildingKind.OFFICE, 3.0, 30.0, 1.5, 1200),
)
SCHOOL = Device(
    "meter-002",
    Domain.ENERGY,
    "École",
    LAT,
    LON,
    MeterSpec(BuildingKind.SCHOOL, 2.5, 35.0, 2.0, 2500),
)
HOMES = Device(
    "meter-003",
    Domain.ENERGY,
    "Résidence",
    LAT,
    LON,
    MeterSpec(BuildingKind.HOUSING, 2.0, 12.0, 0.8, 900),
)
# Collected Monday to Saturday at 06:00 local time.
DAILY_BIN = Device(
    "bin-001",
    Domain.WASTE,
    "Conteneur",
    LAT,
    LON,
    BinSpec(Zone.RESIDENTIAL, "general", 660, 1.5, (0, 1, 2, 3, 4, 5), 6.0),
)
# Collected on Tuesdays at 07:00 local time.
WEEKLY_BIN = Device(
    "bin-002",
    Domain.WASTE,
    "Conteneur verre",
    LAT,
    LON,
    BinSpec(Zone.RESIDENTIAL, "glass", 3000, 6.5, (1,), 7.0),
)
MARKET_BIN = Device(
    "bin-003",
    Domain.WASTE,
    "Conteneur marché",
    LAT,
    LON,
    BinSpec(Zone.MARKET, "general", 770, 4.0, (0, 3), 6.5),
)
ROAD = Device(
    "counter-001",
    Domain.TRAFFIC,
    "Compteur",
    LAT,
    LON,
    CounterSpec("Avenue de Genève", Zone.RESIDENTIAL, 300, 55.0),
)
CENTRE_ROAD = Device(
    "counter-002",
    Domain.TRAFFIC,
    "Compteur centre",
    LAT,
    LON,
    CounterSpec("Rue Royale", Zone.CENTRE, 120, 30.0),
)

SMALL_TOWN = Town(
    seed=7,
    centre=(LAT, LON),
    devices=(OFFICE, SCHOOL, HOMES, DAILY_BIN, WEEKLY_BIN, MARKET_BIN, ROAD, CENTRE_ROAD),
)

Series = dict[tuple[str, datetime], Metrics]


def series(
    town: Town,
    start: datetime,
    end: datetime,
    events: Iterable[LabelledEvent] = (),
) -> Series:
    """All readings of a run, by (device id, timestamp), without sensor glitches."""
    return {
        (r.device.id, r.ts): r.metrics
        for r in iter_readings(town, start=start, end=end, events=events, glitch_rate=0.0)
    }


def values(
    data: Series,
    device_id: str,
    metric: str,
    start: datetime,
    end: datetime,
) -> list[float]:
    """One metric of one device over [start, end), in time order."""
    return [
        m[metric]
        for (dev, ts), m in sorted(data.items())
        if dev == device_id and start <= ts < end and metric in m
    ]


def steps(
    start: datetime,
    end: datetime,
    step: timedelta = timedelta(minutes=15),
) -> list[datetime]:
    """Grid timestamps in [start, end)."""
    out = []
    t = start
    while t < end:
        out.append(t)
        t += step
    return out
