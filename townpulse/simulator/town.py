"""The simulated town: its devices, where they stand and what they are attached to."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")

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
    LIGHTING = "lighting"


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


@dataclass(frozen=True, slots=True)
class LightSpec:
    """Public lighting cabinet with its circuit controller (townpulse/simulator/lighting.py).

    Parameters
    ----------
    zone
        District it lights.
    lamps
        Street lamps it feeds.
    lamp_w
        Power of one lamp at full output (LED lanterns; older sodium ones draw more).
    circuits
        Output circuits of the controller, switched together.
    """

    zone: Zone
    lamps: int
    lamp_w: float
    circuits: int


Spec = MeterSpec | BinSpec | CounterSpec | LightSpec


class LoRaModel(StrEnum):
    """LoRaWAN devices the town owns, by their path in the TTN Device Repository."""

    EM310_UDL = "milesight-iot/em310-udl"  # ultrasonic distance sensor in a bin's lid
    EM300_DI = "milesight-iot/em300-di"  # pulse counter on a meter's S0 output

    @property
    def profile(self) -> str:
        """Name of TownPulse's shipped profile for it, and of the codec imported for it.

        >>> LoRaModel.EM310_UDL.profile
        'milesight-iot-em310-udl'
        """
        return self.value.replace("/", "-")


@dataclass(frozen=True, slots=True)
class LoRaWan:
    """How a device reaches TownPulse through a LoRaWAN network server instead of MQTT.

    Parameters
    ----------
    model
        What it is; its profile maps the decoded fields to metrics.
    dev_eui
        16 lower-case hex digits, stable for the device's id.
    bin_depth_mm
        EM310-UDL: depth from the bin's full line to its bottom (the profile's device setting).
    kwh_per_pulse
        EM300-DI: energy per pulse of the meter's pulse output (the profile's device setting).
    initial_pulses
        EM300-DI: its count when the simulation first hears it (a uint32, counting since the
        counter was fitted).
    """

    model: LoRaModel
    dev_eui: str
    bin_depth_mm: int | None = None
    kwh_per_pulse: float | None = None
    initial_pulses: int = 0

    @property
    def settings(self) -> dict[str, float]:
        """The per-device settings its profile reads from the registration's metadata."""
        out: dict[str, float] = {}
        if self.bin_depth_mm is not None:
            out["bin_depth_mm"] = self.bin_depth_mm
        if self.kwh_per_pulse is not None:
            out["kwh_per_pulse"] = self.kwh_per_pulse
        return out


@dataclass(frozen=True, slots=True)
class Device:
    """One sensor of the town, as registered with the platform.

    `lorawan` is None for a device publishing TownPulse JSON on its own MQTT topic.
    """

    id: str
    domain: Domain
    name: str
    lat: float
    lon: float
    spec: Spec
    lorawan: LoRaWan | None = None

    @property
    def location(self) -> dict[str, float]:
        """Location in the API's shape."""
        return {"lat": self.lat, "lon": self.lon}

    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-ready description of the device's spec (and its LoRaWAN profile's settings)."""
        settings = self.lorawan.settings if self.lorawan is not None else {}
        return {**spec_metadata(self.spec), **settings}

    @property
    def topic(self) -> str:
        """MQTT topic the device publishes on."""
        return f"sensors/{self.domain.value}/{self.id}"

    def registration(self) -> dict[str, Any]:
        """Body of `POST /v1/devices` for this device."""
        body = {
            "id": self.id,
            "domain": self.domain.value,
            "name": self.name,
            "location": self.location,
            "metadata": self.metadata,
        }
        if self.lorawan is not None:
            body |= {"dev_eui": self.lorawan.dev_eui, "profile": self.lorawan.model.profile}
        return body


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
    if isinstance(spec, LightSpec):
        return {
            "zone": spec.zone.value,
            "lamps": spec.lamps,
            "lamp_w": spec.lamp_w,
            "circuits": spec.circuits,
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

    @property
    def fixed_visits_per_week(self) -> float:
        """How many times a week the town's fixed schedule empties each bin, on average (what
        the monthly report compares the planned rounds with; 0 without bins).

        >>> build_town(energy=0, traffic=0).fixed_visits_per_week
        1.3
        """
        days = [len(getattr(d.spec, "collection_weekdays", ())) for d in self.of(Domain.WASTE)]
        return round(sum(days) / len(days), 2) if days else 0.0

    def of(self, domain: Domain) -> tuple[Device, ...]:
        """Devices of one domain, in id order."""
        return tuple(d for d in self.devices if d.domain is domain)

    @property
    def lorawan(self) -> tuple[Device, ...]:
        """Devices sending through a LoRaWAN network server, in town order."""
        return tuple(d for d in self.devices if d.lorawan is not None)

    def get(self, device_id: str) -> Device:
        """The device with this id; raises KeyError if absent."""
        for device in self.devices:
            if device.id == device_id:
                return device
        raise KeyError(device_id)


ID_PREFIX_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,39})?$")


def build_town(
    *,
    energy: int = 40,
    waste: int = 150,
    traffic: int = 25,
    lighting: int = 0,
    seed: int = 42,
    centre: tuple[float, float] = DEFAULT_CENTRE,
    lorawan_bins: float = 0.0,
    lorawan_meters: float = 0.0,
    id_prefix: str = "",
) -> Town:
    """Lay out a town of meters, bins and traffic counters.

    Parameters
    ----------
    energy, waste, traffic, lighting
        Number of building meters, waste bins, traffic counters and public lighting cabinets.
    seed
        The same seed and sizes always give the same town.
    centre
        Latitude and longitude of the town hall.
    lorawan_bins, lorawan_meters
        Share (0 to 1) of the bins that are Milesight EM310-UDL distance sensors and of the
        meters read by Milesight EM300-DI pulse counters, both behind a LoRaWAN network server;
        spread evenly through the numbering. Everything else about the town stays the same.
    id_prefix
        Put before every device id (a second town beside the first, as tests need).

    Returns
    -------
    Town
        Devices ordered meters, then bins, then counters, then lighting cabinets, each
        numbered from 1.

    Examples
    --------
    >>> town = build_town(energy=2, waste=3, traffic=1, lighting=0, seed=7)
    >>> [d.id for d in town]
    ['meter-001', 'meter-002', 'bin-001', 'bin-002', 'bin-003', 'counter-001']
    >>> town == build_town(energy=2, waste=3, traffic=1, lighting=0, seed=7)
    True
    >>> radio = build_town(
    ...     energy=10, waste=6, traffic=0, lighting=0, lorawan_bins=1 / 3, lorawan_meters=0.1
    ... )
    >>> [(d.id, d.lorawan.model.name) for d in radio.lorawan]
    [('meter-010', 'EM300_DI'), ('bin-003', 'EM310_UDL'), ('bin-006', 'EM310_UDL')]
    """
    if min(energy, waste, traffic, lighting) < 0:
        raise ValueError("device counts must be >= 0")
    if not (0.0 <= lorawan_bins <= 1.0 and 0.0 <= lorawan_meters <= 1.0):
        raise ValueError("LoRaWAN shares must be between 0 and 1")
    if not ID_PREFIX_RE.match(id_prefix):
        raise ValueError(f"id prefix {id_prefix!r}: letters, digits, '_', '.', '-' (<= 40)")
    rng = random.Random(f"town:{seed}")
    place = _Placer(rng, centre)
    devices = [
        *_meters(energy, rng, place, id_prefix),
        *_bins(waste, rng, place, id_prefix),
        *_counters(traffic, rng, place, id_prefix),
        # From a generator of their own: the other devices of a seed stay where they were.
        *_cabinets(lighting, _Placer(random.Random(f"lighting:{seed}"), centre), id_prefix),
    ]
    # Chosen after the layout, without the layout's generator: the same seed lays out the same
    # town whatever the shares.
    chosen = {
        d.id
        for domain, share in ((Domain.ENERGY, lorawan_meters), (Domain.WASTE, lorawan_bins))
        for d in _spread([d for d in devices if d.domain is domain], share)
    }
    meters_seen = 0
    for i, device in enumerate(devices):
        if device.id not in chosen:
            continue
        if isinstance(device.spec, BinSpec):
            radio = LoRaWan(
                LoRaModel.EM310_UDL,
                dev_eui(device.id),
                bin_depth_mm=bin_depth_mm(device.spec.capacity_litres),
            )
        else:
            # Most S0 outputs give 1,000 pulses per kWh; every other meter here gives 2,000, so
            # a profile that ignored the device's own setting would show doubled kWh. The first
            # counter is a few thousand pulses short of 2**32: its count wraps within the first
            # hours of any run, as counters on old meters do.
            radio = LoRaWan(
                LoRaModel.EM300_DI,
                dev_eui(device.id),
                kwh_per_pulse=0.001 if meters_seen % 2 == 0 else 0.0005,
                initial_pulses=(
                    U32 - WRAP_SOON_PULSES
                    if meters_seen == 0
                    else 1_000_000 + stable_int(f"pulses:{device.id}") % (U32 - 2_000_000)
                ),
            )
            meters_seen += 1
        devices[i] = dataclasses.replace(device, lorawan=radio)
    return Town(seed=seed, centre=centre, devices=tuple(devices))


def _spread(items: Sequence[T], share: float) -> list[T]:
    """About `share` of `items`, evenly through the numbering.

    >>> _spread(range(1, 10), 1 / 3), _spread(range(1, 41), 0.1), _spread(range(5), 0.0)
    ([3, 6, 9], [10, 20, 30, 40], [])
    """
    # The small epsilon keeps a share like 1/3 from losing an item to rounding (3 * (1/3) < 1).
    return [
        item
        for i, item in enumerate(items, start=1)
        if math.floor(i * share + 1e-9) > math.floor((i - 1) * share + 1e-9)
    ]


U32 = 2**32
WRAP_SOON_PULSES = 5_000


def stable_int(text: str) -> int:
    """A number made from `text`, the same in every interpreter (hash() of a str is not)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


# Milesight's IEEE OUI: the first three bytes of its devices' DevEUIs.
MILESIGHT_OUI = "24e124"


def dev_eui(device_id: str) -> str:
    """A stable DevEUI for a simulated device: Milesight's prefix and a hash of its id.

    >>> dev_eui("bin-003")
    '24e1240ed1ac0347'
    >>> dev_eui("bin-003") == dev_eui("bin-003") != dev_eui("bin-004")
    True
    """
    return MILESIGHT_OUI + hashlib.sha256(device_id.encode()).hexdigest()[:10]


# Depth (mm) from the full line to the bottom of the containers the town uses, by volume: a
# 240 l wheelie bin is about a metre deep; four-wheel containers and glass igloos are deeper.
_BIN_DEPTHS_MM = {
    240: 1000,
    360: 1080,
    660: 1150,
    770: 1200,
    1100: 1300,
    1500: 1500,
    3000: 1800,
    4000: 2000,
}


def bin_depth_mm(capacity_litres: int) -> int:
    """How deep a bin of this volume is, as its distance sensor is configured.

    >>> bin_depth_mm(240), bin_depth_mm(3000), bin_depth_mm(500)
    (1000, 1800, 1000)
    """
    return _BIN_DEPTHS_MM.get(capacity_litres, 1000)


def offset(origin: tuple[float, float], *, east_m: float, north_m: float) -> tuple[float, float]:
    """The point `east_m` east and `north_m` north of `origin` (flat earth: a town is small)."""
    lat0, lon0 = origin
    lat = lat0 + north_m / METRES_PER_DEG_LAT
    lon = lon0 + east_m / (METRES_PER_DEG_LAT * math.cos(math.radians(lat0)))
    return round(lat, 6), round(lon, 6)


def _device_id(prefix: str, index: int, total: int, id_prefix: str = "") -> str:
    return f"{id_prefix}{prefix}-{index:0{max(3, len(str(total)))}d}"


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


def _meters(count: int, rng: random.Random, place: _Placer, id_prefix: str) -> Iterator[Device]:
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
        device_id = _device_id("meter", i, count, id_prefix)
        yield Device(device_id, Domain.ENERGY, name, lat, lon, spec)


_ZONE_WEIGHTS = {Zone.RESIDENTIAL: 0.55, Zone.CENTRE: 0.2, Zone.TOURIST: 0.15, Zone.MARKET: 0.1}
# Shares of the monitored containers: residual waste, packaging (recycling) and glass drop-off
# columns. The figures behind this calibration, and their sources, are in docs/waste.md
# ("Simulated town").
_STREAMS = (("general", 0.6), ("recycling", 0.3), ("glass", 0.1))
# Shared containers: two- and four-wheel bins for residual waste and packaging, 3 to 4 m3
# drop-off columns for glass (the columns are 2 to 4 m3 in France).
_CAPACITIES = {
    "general": (240, 360, 660, 770),
    "recycling": (360, 660, 770),
    "glass": (3_000, 4_000),
}
# The fixed schedule: residual waste twice a week (C2) where people and shops are dense, once a
# week (C1) in the residential quarters; packaging once a week; glass columns on a weekly round.
_ROUNDS_PER_WEEK = {
    ("general", Zone.CENTRE): 2,
    ("general", Zone.MARKET): 2,
    ("general", Zone.TOURIST): 2,
    ("general", Zone.RESIDENTIAL): 1,
}
# How full a container is when its fixed round comes after the longest gap of its week (Thursday
# to Monday for a C2 round), in an ordinary week: the town sized its containers for its busiest
# weeks, so on the others many are emptied about half full (what smart-bin pilots find).
_FILL_AT_ROUND = (0.25, 0.7)
_LONGEST_GAP_DAYS = {1: 7.0, 2: 4.0}
_ZONE_LABEL = {
    Zone.RESIDENTIAL: "quartier",
    Zone.CENTRE: "centre-ville",
    Zone.TOURIST: "promenade du lac",
    Zone.MARKET: "place du Marché",
}


def _collection_days(rounds_per_week: int, sector: int) -> tuple[int, ...]:
    # Each sector of the town has its round days, Monday to Friday (as the town's crews work):
    # one a day for weekly rounds, and Monday and Thursday or Tuesday and Friday for C2.
    if rounds_per_week == 2:
        return ((0, 3), (1, 4))[sector % 2]
    return (sector,)


def _sector(place: _Placer, lat: float, lon: float) -> int:
    """Which of five slices of the town around its centre (a round day's sector) holds a bin."""
    bearing = math.atan2(lat - place._lat0, lon - place._lon0)
    return int((bearing + math.pi) / (2 * math.pi) * 5) % 5


def _bins(count: int, rng: random.Random, place: _Placer, id_prefix: str) -> Iterator[Device]:
    zones = list(_ZONE_WEIGHTS)
    for i in range(1, count + 1):
        zone = rng.choices(zones, [_ZONE_WEIGHTS[z] for z in zones])[0]
        stream = rng.choices([s for s, _ in _STREAMS], [w for _, w in _STREAMS])[0]
        rounds = _ROUNDS_PER_WEEK.get((stream, zone), 1)
        # Days from empty to full: its round's longest interval over how full it is then.
        fill_days = round(_LONGEST_GAP_DAYS[rounds] / rng.uniform(*_FILL_AT_ROUND), 2)
        lat, lon = place(zone)
        spec = BinSpec(
            zone=zone,
            stream=stream,
            capacity_litres=rng.choice(_CAPACITIES[stream]),
            fill_days=fill_days,
            collection_weekdays=_collection_days(rounds, _sector(place, lat, lon)),
            collection_hour=rng.choice((5.5, 6.0, 6.5, 7.0, 7.5, 8.0)),
        )
        yield Device(
            _device_id("bin", i, count, id_prefix),
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


def _counters(count: int, rng: random.Random, place: _Placer, id_prefix: str) -> Iterator[Device]:
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
            _device_id("counter", i, count, id_prefix),
            Domain.TRAFFIC,
            f"Compteur {road} ({direction})",
            lat,
            lon,
            spec,
        )


# Lighting cabinets per district: the centre's streets and squares, the quarters, the lakeside.
_LIGHT_ZONE_WEIGHTS = {
    Zone.RESIDENTIAL: 0.55,
    Zone.CENTRE: 0.25,
    Zone.TOURIST: 0.1,
    Zone.MARKET: 0.1,
}
# (lamps, lamp_w): cabinets feed 8 to 30 lanterns; most are LED (60 W here, the lighting
# service's default lamp), the lakeside's older ones sodium with their ballasts (100 W).
_LAMPS = (8, 30)
_LAMP_W = {Zone.TOURIST: 100.0}
_LED_W = 60.0


def _cabinets(count: int, place: _Placer, id_prefix: str) -> Iterator[Device]:
    rng = place._rng
    zones = list(_LIGHT_ZONE_WEIGHTS)
    for i in range(1, count + 1):
        zone = rng.choices(zones, [_LIGHT_ZONE_WEIGHTS[z] for z in zones])[0]
        lat, lon = place(zone)
        spec = LightSpec(
            zone=zone,
            lamps=rng.randint(*_LAMPS),
            lamp_w=_LAMP_W.get(zone, _LED_W),
            circuits=rng.choice((1, 2)),
        )
        yield Device(
            _device_id("cabinet", i, count, id_prefix),
            Domain.LIGHTING,
            f"Armoire d'éclairage {_ZONE_LABEL[zone]} n°{i}",
            lat,
            lon,
            spec,
        )
