"""The simulated town: its devices, where they stand and what they are attached to."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

DEFAULT_CENTRE = (45.9000, 6.1200)
METRES_PER_DEG_LAT = 111_320.0
# The municipal depot the refuse trucks leave from: the technical services' yard on the edge
# of town, (east, north) metres from the centre, outside the residential scatter's core.
DEPOT_OFFSET_M = (-900.0, -1_300.0)


class Domain(StrEnum):
    """Sensor domains; each is the middle level of the MQTT topic."""

    ENERGY = "energy"
    WASTE = "waste"
    TRAFFIC = "traffic"


class BuildingKind(StrEnum):
    """Building types, each with its own occupancy profile."""

    HOUSING = "housing"
    SCHOOL = "school"
    TOWN_HALL = "town_hall"
    GYM = "gym"
    OFFICE = "office"
    SHOP = "shop"
    LIBRARY = "library"


class Zone(StrEnum):
    """Parts of town with distinct waste and traffic habits."""

    CENTRE = "centre"
    MARKET = "market"
    RESIDENTIAL = "residential"
    TOURIST = "tourist"


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """Electricity meter of one building.

    Parameters
    ----------
    building
        Building type; selects the occupancy profile.
    base_kw
        Standby load (fridges, servers, ventilation) drawn at all times.
    peak_kw
        Load when the building is fully occupied, heating excluded.
    heat_loss_kw_per_k
        Electric heating power needed per kelvin below the balance temperature.
    floor_area_m2
        Informative only.
    """

    building: BuildingKind
    base_kw: float
    peak_kw: float
    heat_loss_kw_per_k: float
    floor_area_m2: int


@dataclass(frozen=True, slots=True)
class BinSpec:
    """Connected waste bin.

    Parameters
    ----------
    zone
        Part of town; drives weekly and market patterns.
    stream
        Waste stream (general, recycling, glass).
    capacity_litres
        Container volume.
    fill_days
        Typical days from empty to full on an ordinary day.
    collection_weekdays
        Weekdays (0 = Monday) on which the truck empties it.
    collection_hour
        Local hour of the collection round.
    """

    zone: Zone
    stream: str
    capacity_litres: int
    fill_days: float
    collection_weekdays: tuple[int, ...]
    collection_hour: float


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """Road traffic counter (inductive loop or camera).

    Parameters
    ----------
    road
        Road name.
    zone
        Part of town; the centre is affected by markets, tourist roads by weekends.
    capacity_per_step
        Vehicles per 15 minutes at which the road saturates.
    free_speed_kmh
        Mean speed when the road is empty.
    """

    road: str
    zone: Zone
    capacity_per_step: int
    free_speed_kmh: float


Spec = MeterSpec | BinSpec | CounterSpec


@dataclass(frozen=True, slots=True)
class Device:
    """One sensor of the town, as registered with the platform."""

    id: str
    domain: Domain
    name: str
    lat: float
    lon: float
    spec: Spec

    @property
    def location(self) -> dict[str, float]:
        """Location in the API's shape."""
        return {"lat": self.lat, "lon": self.lon}

    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-ready description of the device's spec."""
        return spec_metadata(self.spec)

    @property
    def topic(self) -> str:
        """MQTT topic the device publishes on."""
        return f"sensors/{self.domain.value}/{self.id}"

    def registration(self) -> dict[str, Any]:
        """Body of `POST /v1/devices` for this device."""
        return {
            "id": self.id,
            "domain": self.domain.value,
            "name": self.name,
            "location": self.location,
            "metadata": self.metadata,
        }


_WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def spec_metadata(spec: Spec) -> dict[str, Any]:
    """Flatten a spec into registration metadata.

    >>> spec_metadata(CounterSpec("Rue Royale", Zone.CENTRE, 120, 30.0))["road"]
    'Rue Royale'
    """
    if isinstance(spec, MeterSpec):
        return {
            "building_type": spec.building.value,
            "floor_area_m2": spec.floor_area_m2,
            "base_kw": spec.base_kw,
            "peak_kw": spec.peak_kw,
        }
    if isinstance(spec, BinSpec):
        return {
            "zone": spec.zone.value,
            "waste_stream": spec.stream,
            "capacity_litres": spec.capacity_litres,
            "collection_days": [_WEEKDAY_NAMES[d] for d in spec.collection_weekdays],
            "collection_hour": spec.collection_hour,
        }
    return {
        "road": spec.road,
        "zone": spec.zone.value,
        "capacity_veh_per_15min": spec.capacity_per_step,
        "speed_limit_kmh": round(spec.free_speed_kmh / 10) * 10,
    }


@dataclass(frozen=True, slots=True)
class Town:
    """A fixed set of devices, built deterministically from a seed."""

    seed: int
    centre: tuple[float, float]
    devices: tuple[Device, ...]

    def __iter__(self) -> Iterator[Device]:
        return iter(self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    @property
    def depot(self) -> tuple[float, float]:
        """Latitude and longitude of the refuse trucks' depot.

        >>> build_town(energy=0, waste=0, traffic=0).depot
        (45.888322, 6.108382)
        """
        return offset(self.centre, east_m=DEPOT_OFFSET_M[0], north_m=DEPOT_OFFSET_M[1])

    def of(self, domain: Domain) -> tuple[Device, ...]:
        """Devices of one domain, in id order."""
        return tuple(d for d in self.devices if d.domain is domain)

    def get(self, device_id: str) -> Device:
        """The device with this id; raises KeyError if absent."""
        for device in self.devices:
            if device.id == device_id:
                return device
        raise KeyError(device_id)


def build_town(
    *,
    energy: int = 40,
    waste: int = 150,
    traffic: int = 25,
    seed: int = 42,
    centre: tuple[float, float] = DEFAULT_CENTRE,
) -> Town:
    """Lay out a town of meters, bins and traffic counters.

    Parameters
    ----------
    energy, waste, traffic
        Number of building meters, waste bins and traffic counters.
    seed
        The same seed and sizes always give the same town.
    centre
        Latitude and longitude of the town hall.

    Returns
    -------
    Town
        Devices ordered meters, then bins, then counters, each numbered from 1.

    Examples
    --------
    >>> town = build_town(energy=2, waste=3, traffic=1, seed=7)
    >>> [d.id for d in town]
    ['meter-001', 'meter-002', 'bin-001', 'bin-002', 'bin-003', 'counter-001']
    >>> town == build_town(energy=2, waste=3, traffic=1, seed=7)
    True
    """
    if min(energy, waste, traffic) < 0:
        raise ValueError("device counts must be >= 0")
    rng = random.Random(f"town:{seed}")
    place = _Placer(rng, centre)
    devices = [
        *_meters(energy, rng, place),
        *_bins(waste, rng, place),
        *_counters(traffic, rng, place),
    ]
    return Town(seed=seed, centre=centre, devices=tuple(devices))


def offset(origin: tuple[float, float], *, east_m: float, north_m: float) -> tuple[float, float]:
    """The point `east_m` east and `north_m` north of `origin` (flat earth: a town is small)."""
    lat0, lon0 = origin
    lat = lat0 + north_m / METRES_PER_DEG_LAT
    lon = lon0 + east_m / (METRES_PER_DEG_LAT * math.cos(math.radians(lat0)))
    return round(lat, 6), round(lon, 6)


def _device_id(prefix: str, index: int, total: int) -> str:
    return f"{prefix}-{index:0{max(3, len(str(total)))}d}"


class _Placer:
    """Scatters devices around landmarks (metres east/north of the centre)."""

    LANDMARKS: ClassVar[dict[Zone, tuple[float, float, float]]] = {
        # (east, north, spread), all in metres.
        Zone.CENTRE: (0.0, 0.0, 250.0),
        Zone.MARKET: (120.0, -80.0, 60.0),
        Zone.RESIDENTIAL: (0.0, 0.0, 1_100.0),
        Zone.TOURIST: (1_300.0, 400.0, 250.0),  # lakeside promenade
    }

    def __init__(self, rng: random.Random, centre: tuple[float, float]) -> None:
        self._rng = rng
        self._lat0, self._lon0 = centre

    def __call__(self, zone: Zone) -> tuple[float, float]:
        east, north, spread = self.LANDMARKS[zone]
        east += self._rng.gauss(0.0, spread)
        north += self._rng.gauss(0.0, spread)
        return offset((self._lat0, self._lon0), east_m=east, north_m=north)


@dataclass(frozen=True, slots=True)
class _Archetype:
    """How common a building type is and the ranges its meter parameters are drawn from."""

    weight: float
    base_kw: tuple[float, float]
    peak_kw: tuple[float, float]
    heat_loss_kw_per_k: tuple[float, float]
    floor_area_m2: tuple[int, int]


_ARCHETYPES: dict[BuildingKind, _Archetype] = {
    BuildingKind.HOUSING: _Archetype(0.45, (1.0, 4.0), (6.0, 18.0), (0.4, 1.2), (400, 2_000)),
    BuildingKind.SCHOOL: _Archetype(0.12, (2.0, 5.0), (20.0, 45.0), (1.0, 2.5), (1_500, 4_000)),
    BuildingKind.OFFICE: _Archetype(0.13, (2.0, 6.0), (15.0, 40.0), (0.8, 2.0), (800, 3_000)),
    BuildingKind.SHOP: _Archetype(0.12, (6.0, 15.0), (20.0, 50.0), (0.6, 1.5), (300, 2_500)),
    BuildingKind.GYM: _Archetype(0.08, (3.0, 6.0), (20.0, 40.0), (1.2, 2.5), (1_000, 3_000)),
    BuildingKind.LIBRARY: _Archetype(0.05, (1.0, 3.0), (8.0, 20.0), (0.5, 1.2), (400, 1_200)),
    BuildingKind.TOWN_HALL: _Archetype(0.05, (3.0, 6.0), (20.0, 35.0), (1.0, 2.0), (1_200, 3_000)),
}

_BUILDING_NAMES: dict[BuildingKind, tuple[str, ...]] = {
    BuildingKind.HOUSING: (
        "Résidence les Tilleuls",
        "Résidence du Lac",
        "Les Balcons du Semnoz",
        "Résidence Beauregard",
        "Le Clos des Vignes",
        "Résidence Bellevue",
    ),
    BuildingKind.SCHOOL: (
        "École Jules Ferry",
        "École Marie Curie",
        "Collège Louis Pasteur",
        "École des Barattes",
    ),
    BuildingKind.OFFICE: ("Centre d'affaires du Parc", "Maison des Entreprises", "Le Forum"),
    BuildingKind.SHOP: ("Supermarché du Centre", "Boulangerie de la Place", "Pharmacie du Lac"),
    BuildingKind.GYM: ("Gymnase municipal", "Piscine des Marquisats", "Salle omnisports"),
    BuildingKind.LIBRARY: ("Médiathèque Bonlieu", "Bibliothèque des Teppes"),
    BuildingKind.TOWN_HALL: ("Mairie", "Mairie annexe", "Services techniques"),
}


def _building_name(kind: BuildingKind, ordinal: int) -> str:
    names = _BUILDING_NAMES[kind]
    base = names[ordinal % len(names)]
    return base if ordinal < len(names) else f"{base} {ordinal // len(names) + 1}"


def _meters(count: int, rng: random.Random, place: _Placer) -> Iterator[Device]:
    kinds = list(_ARCHETYPES)
    weights = [a.weight for a in _ARCHETYPES.values()]
    seen: dict[BuildingKind, int] = {}
    for i in range(1, count + 1):
        # Every town has a town hall; make it the first meter so small towns keep it.
        kind = BuildingKind.TOWN_HALL if i == 1 else rng.choices(kinds, weights)[0]
        arch = _ARCHETYPES[kind]
        ordinal = seen.get(kind, 0)
        seen[kind] = ordinal + 1
        central = kind in (BuildingKind.TOWN_HALL, BuildingKind.SHOP)
        lat, lon = place(Zone.CENTRE if central else Zone.RESIDENTIAL)
        spec = MeterSpec(
            building=kind,
            base_kw=round(rng.uniform(*arch.base_kw), 2),
            peak_kw=round(rng.uniform(*arch.peak_kw), 2),
            heat_loss_kw_per_k=round(rng.uniform(*arch.heat_loss_kw_per_k), 3),
            floor_area_m2=rng.randint(*arch.floor_area_m2),
        )
        name = _building_name(kind, ordinal)
        yield Device(_device_id("meter", i, count), Domain.ENERGY, name, lat, lon, spec)


_ZONE_WEIGHTS = {Zone.RESIDENTIAL: 0.55, Zone.CENTRE: 0.2, Zone.TOURIST: 0.15, Zone.MARKET: 0.1}
_STREAMS = (("general", 0.6), ("recycling", 0.3), ("glass", 0.1))
_CAPACITIES = {
    "general": (240, 360, 660, 770, 1_100),
    "recycling": (360, 660, 1_100),
    "glass": (1_500, 3_000),
}
_ZONE_LABEL = {
    Zone.RESIDENTIAL: "quartier",
    Zone.CENTRE: "centre-ville",
    Zone.TOURIST: "promenade du lac",
    Zone.MARKET: "place du Marché",
}


def _collection_days(fill_days: float, rng: random.Random) -> tuple[int, ...]:
    # Rounds are planned so an ordinary week rarely overflows a bin.
    if fill_days < 1.6:
        return (0, 1, 2, 3, 4, 5)
    if fill_days < 3.2:
        return rng.choice(((0, 2, 4), (1, 3, 5)))
    if fill_days < 5.0:
        return rng.choice(((0, 3), (1, 4), (2, 5)))
    return (rng.randrange(0, 5),)


def _bins(count: int, rng: random.Random, place: _Placer) -> Iterator[Device]:
    zones = list(_ZONE_WEIGHTS)
    for i in range(1, count + 1):
        zone = rng.choices(zones, [_ZONE_WEIGHTS[z] for z in zones])[0]
        stream = rng.choices([s for s, _ in _STREAMS], [w for _, w in _STREAMS])[0]
        fill_days = round(rng.uniform(1.0, 7.0) if stream != "glass" else rng.uniform(4.0, 7.0), 2)
        lat, lon = place(zone)
        spec = BinSpec(
            zone=zone,
            stream=stream,
            capacity_litres=rng.choice(_CAPACITIES[stream]),
            fill_days=fill_days,
            collection_weekdays=_collection_days(fill_days, rng),
            collection_hour=rng.choice((5.5, 6.0, 6.5, 7.0, 7.5, 8.0)),
        )
        yield Device(
            _device_id("bin", i, count),
            Domain.WASTE,
            f"Conteneur {stream} {_ZONE_LABEL[zone]} n°{i}",
            lat,
            lon,
            spec,
        )


# (road, zone, capacity range per 15 min, free speed km/h)
_ROADS: tuple[tuple[str, Zone, tuple[int, int], float], ...] = (
    ("Avenue de Genève", Zone.RESIDENTIAL, (250, 400), 55.0),
    ("Rue Royale", Zone.CENTRE, (90, 150), 28.0),
    ("Boulevard du Lac", Zone.TOURIST, (200, 320), 48.0),
    ("Route d'Annecy", Zone.RESIDENTIAL, (300, 450), 68.0),
    ("Rue de la République", Zone.CENTRE, (100, 160), 30.0),
    ("Avenue Jean Jaurès", Zone.RESIDENTIAL, (180, 280), 47.0),
    ("Quai de la Tournette", Zone.TOURIST, (120, 200), 32.0),
    ("Rue Victor Hugo", Zone.CENTRE, (70, 120), 27.0),
    ("Chemin des Vignes", Zone.RESIDENTIAL, (40, 80), 40.0),
    ("Rocade Nord", Zone.RESIDENTIAL, (450, 650), 78.0),
)
_DIRECTIONS = ("nord", "sud", "est", "ouest")


def _counters(count: int, rng: random.Random, place: _Placer) -> Iterator[Device]:
    for i in range(1, count + 1):
        road, zone, capacity, speed = _ROADS[(i - 1) % len(_ROADS)]
        direction = _DIRECTIONS[(i - 1) // len(_ROADS) % len(_DIRECTIONS)]
        lat, lon = place(zone)
        spec = CounterSpec(
            road=road,
            zone=zone,
            capacity_per_step=rng.randint(*capacity),
            free_speed_kmh=round(speed * rng.uniform(0.93, 1.07), 1),
        )
        yield Device(
            _device_id("counter", i, count),
            Domain.TRAFFIC,
            f"Compteur {road} ({direction})",
            lat,
            lon,
            spec,
        )
