"""Town layout, determinism and the shape of every reading."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta

import pytest

from townpulse.simulator.readings import iter_readings, to_payload
from townpulse.simulator.town import (
    BinSpec,
    BuildingKind,
    Domain,
    MeterSpec,
    Town,
    Zone,
    build_town,
)

pytestmark = pytest.mark.unit

METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


@pytest.fixture(scope="module")
def town() -> Town:
    return build_town(lighting=20)


def test_default_town_has_requested_sizes_and_unique_ids(town: Town) -> None:
    assert len(town.of(Domain.ENERGY)) == 40
    assert len(town.of(Domain.WASTE)) == 150
    assert len(town.of(Domain.TRAFFIC)) == 25
    ids = [d.id for d in town]
    assert len(set(ids)) == len(ids)
    assert {"meter-001", "meter-040", "bin-150", "counter-025"} <= set(ids)
    assert all(DEVICE_ID_RE.match(i) for i in ids)


def test_sizes_are_parameters() -> None:
    town = build_town(energy=3, waste=0, traffic=1200, seed=1)
    assert [d.id for d in town.of(Domain.ENERGY)] == ["meter-001", "meter-002", "meter-003"]
    assert town.of(Domain.WASTE) == ()
    assert town.of(Domain.TRAFFIC)[-1].id == "counter-1200"


def test_same_seed_same_town_other_seed_other_town() -> None:
    assert build_town(seed=5) == build_town(seed=5)
    assert build_town(seed=5) != build_town(seed=6)


def test_devices_stand_in_the_town_with_registration_bodies(town: Town) -> None:
    lat0, lon0 = town.centre
    for device in town:
        # Everything within ~5 km of the centre.
        assert math.hypot(device.lat - lat0, (device.lon - lon0) * 0.7) < 0.05
        body = json.loads(json.dumps(device.registration()))
        assert body["id"] == device.id
        assert body["domain"] == device.domain.value
        assert set(body["location"]) == {"lat", "lon"}
        assert body["metadata"]
        assert device.topic == f"sensors/{device.domain.value}/{device.id}"


def test_town_mixes_building_types_and_bin_speeds(town: Town) -> None:
    meters = [d.spec for d in town.of(Domain.ENERGY)]
    kinds = {s.building for s in meters if isinstance(s, MeterSpec)}
    assert {BuildingKind.TOWN_HALL, BuildingKind.SCHOOL, BuildingKind.HOUSING} <= kinds
    bins = [d.spec for d in town.of(Domain.WASTE) if isinstance(d.spec, BinSpec)]
    assert {b.stream for b in bins} == {"general", "recycling", "glass"}
    for b in bins:
        days = sorted(b.collection_weekdays)
        assert days and all(0 <= d <= 4 for d in days)  # rounds on working days
        dense = b.stream == "general" and b.zone is not Zone.RESIDENTIAL
        assert len(days) == (2 if dense else 1)  # C2 where dense, C1 elsewhere
        gaps = [(b2 - b1) % 7 or 7 for b1, b2 in zip(days, [*days[1:], days[0]], strict=True)]
        # At its round after the longest gap, an ordinary week leaves it 25 to 70 % full.
        assert 0.25 <= max(gaps) / b.fill_days <= 0.7
        assert b.capacity_litres >= 3000 if b.stream == "glass" else b.capacity_litres <= 770
    assert max(b.fill_days for b in bins) > 3 * min(b.fill_days for b in bins)


def test_same_seed_gives_same_readings() -> None:
    def run(seed: int) -> list[tuple[str, datetime, dict[str, float]]]:
        town = build_town(energy=5, waste=8, traffic=3, seed=seed)
        end = T0 + timedelta(days=1)
        return [(r.device.id, r.ts, r.metrics) for r in iter_readings(town, start=T0, end=end)]

    first = run(11)
    assert first == run(11)
    assert first != run(12)


def test_readings_do_not_depend_on_where_the_iteration_started() -> None:
    town = build_town(energy=4, waste=0, traffic=3, seed=3)
    end = T0 + timedelta(hours=6)
    late = T0 + timedelta(hours=4)
    full = {(r.device.id, r.ts): r.metrics for r in iter_readings(town, start=T0, end=end)}
    tail = {(r.device.id, r.ts): r.metrics for r in iter_readings(town, start=late, end=end)}
    assert tail == {k: v for k, v in full.items() if k[1] >= late}


def test_readings_are_ordered_utc_aligned_and_well_named(town: Town) -> None:
    start = T0 + timedelta(minutes=7)
    readings = list(iter_readings(town, start=start, end=T0 + timedelta(hours=3)))
    assert len(readings) == len(town) * 11  # 08:15 .. 02:45 UTC in 15-min steps
    stamps = [r.ts for r in readings]
    assert stamps == sorted(stamps)
    assert stamps[0] == T0 + timedelta(minutes=15)
    for r in readings:
        assert r.ts.utcoffset() == timedelta(0)
        assert r.ts.minute % 15 == 0 and r.ts.second == 0
        assert r.metrics
        for name, value in r.metrics.items():
            assert METRIC_RE.match(name), name
            assert isinstance(value, int | float) and math.isfinite(value)


def test_each_domain_reports_its_metrics(town: Town) -> None:
    readings = list(iter_readings(town, start=T0 + timedelta(hours=8), end=T0 + timedelta(hours=9)))
    names: dict[Domain, set[str]] = {d: set() for d in Domain}
    for r in readings:
        names[r.device.domain] |= set(r.metrics)
    assert names == {
        Domain.ENERGY: {"energy_kwh"},
        Domain.WASTE: {"fill_pct", "temperature_c"},
        Domain.TRAFFIC: {"vehicles", "speed_kmh"},
        # Some cabinets switch two circuits (the lighting service's circuit_<n>_on).
        Domain.LIGHTING: {
            "power_w",
            "energy_kwh",
            "voltage_v",
            "dimming_pct",
            "circuit_1_on",
            "circuit_2_on",
        },
    }


def test_payload_is_flat_json_with_rfc3339_z_timestamp() -> None:
    payload = to_payload(
        datetime(2026, 3, 2, 8, 15, tzinfo=UTC), {"vehicles": 12, "speed_kmh": 41.5}
    )
    doc = json.loads(payload)
    assert doc == {"ts": "2026-03-02T08:15:00Z", "vehicles": 12, "speed_kmh": 41.5}


def test_naive_times_are_refused(town: Town) -> None:
    naive = datetime(2026, 3, 2)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        next(iter_readings(town, start=naive, end=None))


def test_lorawan_devices_are_a_spread_share_and_change_nothing_else() -> None:
    plain = build_town(seed=4)
    radio = build_town(seed=4, lorawan_bins=1 / 3, lorawan_meters=0.1)
    assert [(d.id, d.spec, d.lat, d.lon, d.name) for d in plain] == [
        (d.id, d.spec, d.lat, d.lon, d.name) for d in radio
    ]
    bins = [d for d in radio.lorawan if d.domain is Domain.WASTE]
    meters = [d for d in radio.lorawan if d.domain is Domain.ENERGY]
    assert len(bins) == 50 and [d.id for d in bins[:3]] == ["bin-003", "bin-006", "bin-009"]
    assert [d.id for d in meters] == ["meter-010", "meter-020", "meter-030", "meter-040"]
    euis = [d.lorawan.dev_eui for d in radio.lorawan if d.lorawan]
    assert len(set(euis)) == len(euis) and all(re.fullmatch(r"24e124[0-9a-f]{10}", e) for e in euis)
    # The same device has the same DevEUI whatever the seed: a restart finds it registered.
    other = build_town(seed=5, lorawan_bins=1 / 3).get("bin-003").lorawan
    assert other is not None and bins[0].lorawan is not None
    assert other.dev_eui == bins[0].lorawan.dev_eui


def test_lorawan_registration_names_the_dev_eui_profile_and_settings() -> None:
    town = build_town(energy=1, waste=1, traffic=1, lorawan_bins=1.0, lorawan_meters=1.0)
    bin_, meter, counter = (
        town.get(i).registration() for i in ("bin-001", "meter-001", "counter-001")
    )
    assert bin_["profile"] == "milesight-iot-em310-udl" and bin_["domain"] == "waste"
    assert bin_["dev_eui"] == town.get("bin-001").lorawan.dev_eui  # type: ignore[union-attr]
    assert bin_["metadata"]["bin_depth_mm"] in (1000, 1080, 1150, 1200, 1300, 1500, 1800)
    assert (
        meter["profile"] == "milesight-iot-em300-di" and meter["metadata"]["kwh_per_pulse"] == 0.001
    )
    assert "dev_eui" not in counter and "profile" not in counter


def test_id_prefix_makes_a_second_town_beside_the_first() -> None:
    town = build_town(energy=1, waste=1, traffic=1, id_prefix="t-abc-", lorawan_bins=1.0)
    assert [d.id for d in town] == ["t-abc-meter-001", "t-abc-bin-001", "t-abc-counter-001"]
    assert (
        town.get("t-abc-bin-001").lorawan
        != build_town(waste=1, lorawan_bins=1.0).get("bin-001").lorawan
    )
    with pytest.raises(ValueError, match="id prefix"):
        build_town(id_prefix="a/b")
    with pytest.raises(ValueError, match="shares"):
        build_town(lorawan_bins=1.5)
