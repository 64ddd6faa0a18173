"""Every example of every codec in the local TTN Device Repository copy, end to end.

TownPulse's sandbox decodes each example's bytes to exactly the output the repository expects
(compared after a JSON round trip, as `../shared/data/lorawan-devices/README.md` checked them),
then the profile TownPulse ships for the device maps that output to the readings written below by
hand from the codec's output and the profile's arithmetic.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.gateway.ingest.codec import (
    CodecSandbox,
    RepositoryCodec,
    list_repository_codecs,
    load_repository_codec,
)
from services.gateway.ingest.profile import (
    MemoryCounters,
    Profile,
    check_against_examples,
    map_fields,
    parse_profile,
    shipped_profiles,
)

pytestmark = pytest.mark.unit

REPOSITORY = Path(
    os.environ.get(
        "TOWNPULSE_DEVICE_REPOSITORY",
        Path(__file__).resolve().parents[4].parent / "shared" / "data" / "lorawan-devices",
    )
)
TS = datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC)
CODECS = [
    "milesight-iot/ct101",
    "milesight-iot/em300-di",
    "milesight-iot/em310-udl",
    "milesight-iot/em400-mud",
    "milesight-iot/vs121",
    "milesight-iot/vs133",
    "milesight-iot/ws558",
    "nwave/nps405",
]

Expected = list[tuple[str, float, str | None]]

# (codec path, example index) -> readings of the shipped profile, for a device with no settings
# of its own (the profile's defaults) and no previous count (a counter's first sighting gives
# only its raw total).
FIRST_READINGS: dict[tuple[str, int], Expected] = {
    # An alarm frame: current 25 A; power = 25 A x 230 V (default) x 1 (default power factor).
    ("milesight-iot/ct101", 0): [("current_a", 25.0, "A"), ("power_w", 5750.0, "W")],
    # Pulse 256: first sighting, no interval yet.
    ("milesight-iot/em300-di", 0): [("pulse_count", 256.0, "count"), ("battery_pct", 92.0, "%")],
    # Distance 2116 mm in a bin 1000 mm deep (default): further than its bottom, so empty.
    ("milesight-iot/em310-udl", 0): [
        ("fill_pct", 0.0, "%"),
        ("distance_mm", 2116.0, "mm"),
        ("tilted", 1.0, None),
        ("battery_pct", 92.0, "%"),
    ],
    ("milesight-iot/em400-mud", 0): [
        ("fill_pct", 0.0, "%"),
        ("distance_mm", 2116.0, "mm"),
        ("temperature_c", 25.7, "°C"),
        ("tilted", 1.0, None),
        ("battery_pct", 92.0, "%"),
    ],
    ("milesight-iot/vs121", 0): [("people_present", 3.0, "count")],
    # Line 1 totals 72 in, 200 out: first sighting.
    ("milesight-iot/vs133", 0): [
        ("people_in_total", 72.0, "count"),
        ("people_out_total", 200.0, "count"),
    ],
    ("milesight-iot/ws558", 0): [("voltage_v", 222.6, "V")],
    ("milesight-iot/ws558", 1): [("energy_total_wh", 1110.0, "Wh")],
    ("nwave/nps405", 0): [("occupied", 1.0, None)],
    ("nwave/nps405", 1): [("occupied", 1.0, None)],
    ("nwave/nps405", 2): [
        ("occupied", 0.0, None),
        ("battery_v", 3.344, "V"),
        ("temperature_c", -10.0, "°C"),
    ],
    ("nwave/nps405", 3): [("occupied", 0.0, None)],
}

# The same examples for a device with settings, or with a previous count remembered.
LATER_READINGS: list[tuple[str, int, dict[str, Any], dict[str, float], Expected]] = [
    # 400 V, power factor 0.9: 25 x 400 x 0.9.
    (
        "milesight-iot/ct101",
        0,
        {"voltage_v": 400, "power_factor": 0.9},
        {},
        [("current_a", 25.0, "A"), ("power_w", 9000.0, "W")],
    ),
    # 56 pulses since 200, at 0.001 kWh each (default).
    (
        "milesight-iot/em300-di",
        0,
        {},
        {"pulse_count": 200},
        [("energy_kwh", 0.056, "kWh"), ("pulse_count", 256.0, "count"), ("battery_pct", 92.0, "%")],
    ),
    # The same at 100 pulses/kWh (0.01 kWh each).
    (
        "milesight-iot/em300-di",
        0,
        {"kwh_per_pulse": 0.01},
        {"pulse_count": 200},
        [("energy_kwh", 0.56, "kWh"), ("pulse_count", 256.0, "count"), ("battery_pct", 92.0, "%")],
    ),
    # The uint32 counter wrapped: 2**32 - 4294967290 = 6 pulses to the top, then 256.
    (
        "milesight-iot/em300-di",
        0,
        {},
        {"pulse_count": 4294967290},
        [("energy_kwh", 0.262, "kWh"), ("pulse_count", 256.0, "count"), ("battery_pct", 92.0, "%")],
    ),
    # From 1000 down to 256, far from the top: the meter was reset, 256 pulses since.
    (
        "milesight-iot/em300-di",
        0,
        {},
        {"pulse_count": 1000},
        [("energy_kwh", 0.256, "kWh"), ("pulse_count", 256.0, "count"), ("battery_pct", 92.0, "%")],
    ),
    # A 2500 mm deep bin: 100 x (2500 - 2116) / 2500.
    (
        "milesight-iot/em310-udl",
        0,
        {"bin_depth_mm": 2500},
        {},
        [
            ("fill_pct", 15.36, "%"),
            ("distance_mm", 2116.0, "mm"),
            ("tilted", 1.0, None),
            ("battery_pct", 92.0, "%"),
        ],
    ),
    # The sensor 200 mm above the full line: 100 x (2500 - (2116 - 200)) / 2500.
    (
        "milesight-iot/em400-mud",
        0,
        {"bin_depth_mm": 2500, "mount_mm": 200},
        {},
        [
            ("fill_pct", 23.36, "%"),
            ("distance_mm", 2116.0, "mm"),
            ("temperature_c", 25.7, "°C"),
            ("tilted", 1.0, None),
            ("battery_pct", 92.0, "%"),
        ],
    ),
    # 70 -> 72 in, 190 -> 200 out.
    (
        "milesight-iot/vs133",
        0,
        {},
        {"people_in_total": 70, "people_out_total": 190},
        [
            ("people", 2.0, "count"),
            ("people_in_total", 72.0, "count"),
            ("people_out", 10.0, "count"),
            ("people_out_total", 200.0, "count"),
        ],
    ),
    # 1000 -> 1110 Wh: 0.11 kWh.
    (
        "milesight-iot/ws558",
        1,
        {},
        {"energy_total_wh": 1000},
        [("energy_kwh", 0.11, "kWh"), ("energy_total_wh", 1110.0, "Wh")],
    ),
]

# The shipped profiles' own example frames (fields the official examples never show).
OWN_EXAMPLE_READINGS: dict[str, tuple[dict[str, float], Expected]] = {
    # 99.5 -> 100 Ah at 230 V: 0.5 x 230 / 1000 kWh.
    "milesight-iot/ct101": (
        {"charge_total_ah": 99.5},
        [
            ("current_a", 25.0, "A"),
            ("power_w", 5750.0, "W"),
            ("energy_kwh", 0.115, "kWh"),
            ("charge_total_ah", 100.0, "Ah"),
        ],
    ),
    # Switch flags 0x05: circuits 1 and 3 on.
    "milesight-iot/ws558": (
        {"energy_total_wh": 1000},
        [
            ("circuit_1_on", 1.0, None),
            ("circuit_2_on", 0.0, None),
            ("circuit_3_on", 1.0, None),
            ("circuit_4_on", 0.0, None),
            ("circuit_5_on", 0.0, None),
            ("circuit_6_on", 0.0, None),
            ("circuit_7_on", 0.0, None),
            ("circuit_8_on", 0.0, None),
            ("voltage_v", 222.6, "V"),
            ("power_w", 300.0, "W"),
            ("power_factor", 0.95, None),
            ("current_a", 1.29, "A"),
            ("energy_kwh", 0.11, "kWh"),
            ("energy_total_wh", 1110.0, "Wh"),
        ],
    ),
}


def _codec(path: str) -> RepositoryCodec:
    return load_repository_codec(REPOSITORY, path)


def _profile_for(codec_name: str) -> Profile:
    found = [parse_profile(d) for d in shipped_profiles() if d.get("codec") == codec_name]
    assert len(found) == 1, f"{codec_name}: {len(found)} shipped profiles"
    return found[0]


def _all_examples() -> list[tuple[str, int]]:
    return [(path, i) for path in CODECS for i in range(len(_codec(path).examples))]


def _readings(
    path: str,
    data: dict[str, Any],
    *,
    metadata: dict[str, Any] | None = None,
    previous: dict[str, float] | None = None,
) -> Expected:
    profile = _profile_for(_codec(path).name)
    counters = MemoryCounters()
    for metric, value in (previous or {}).items():
        counters.remember("dev-1", metric, value)
    out = map_fields(
        profile, data, device_id="dev-1", ts=TS, metadata=metadata or {}, counters=counters
    )
    assert all(r.ts == TS for r in out)
    return [(r.metric, r.value, r.unit) for r in out]


def _same(got: Expected, expected: Expected) -> None:
    assert [(m, u) for m, _, u in got] == [(m, u) for m, _, u in expected]
    assert [v for _, v, _ in got] == pytest.approx([v for _, v, _ in expected], rel=1e-12)


def test_the_repository_copy_holds_the_eight_codecs_and_twelve_examples() -> None:
    assert list_repository_codecs(REPOSITORY) == CODECS
    assert len(_all_examples()) == 12
    assert set(FIRST_READINGS) == set(_all_examples())


@pytest.mark.parametrize(("path", "index"), _all_examples(), ids=lambda v: str(v))
def test_the_sandbox_decodes_each_example_to_its_expected_output(path: str, index: int) -> None:
    codec = _codec(path)
    example = codec.examples[index]
    decoded = CodecSandbox(codec.script).decode(example.bytes, f_port=example.f_port, recv_time=TS)
    assert json.loads(json.dumps(decoded.data)) == example.output["data"]
    if "warnings" not in example.output:
        assert decoded.warnings == ()
    assert "errors" not in example.output


@pytest.mark.parametrize(("path", "index"), sorted(FIRST_READINGS), ids=lambda v: str(v))
def test_the_shipped_profile_maps_each_decoded_example(path: str, index: int) -> None:
    codec = _codec(path)
    example = codec.examples[index]
    decoded = CodecSandbox(codec.script).decode(example.bytes, f_port=example.f_port, recv_time=TS)
    _same(_readings(path, decoded.data), FIRST_READINGS[(path, index)])


@pytest.mark.parametrize(
    ("path", "index", "metadata", "previous", "expected"),
    LATER_READINGS,
    ids=[f"{p}-{i}-{sorted(m)}-{sorted(c)}" for p, i, m, c, _ in LATER_READINGS],
)
def test_device_settings_and_previous_counts(
    path: str, index: int, metadata: dict[str, Any], previous: dict[str, float], expected: Expected
) -> None:
    codec = _codec(path)
    example = codec.examples[index]
    decoded = CodecSandbox(codec.script).decode(example.bytes, f_port=example.f_port, recv_time=TS)
    _same(_readings(path, decoded.data, metadata=metadata, previous=previous), expected)


@pytest.mark.parametrize("path", sorted(OWN_EXAMPLE_READINGS))
def test_the_profiles_own_example_frames(path: str) -> None:
    codec = _codec(path)
    profile = _profile_for(codec.name)
    assert len(profile.examples) == 1
    example = profile.examples[0]
    assert example.payload is not None and example.f_port is not None
    sandbox = CodecSandbox(codec.script)
    decoded = sandbox.decode(example.payload, f_port=example.f_port, recv_time=TS)
    previous, expected = OWN_EXAMPLE_READINGS[path]
    _same(_readings(path, decoded.data, previous=previous), expected)


@pytest.mark.parametrize("path", CODECS)
def test_each_shipped_profile_passes_its_codecs_examples(path: str) -> None:
    codec = _codec(path)
    profile = _profile_for(codec.name)
    assert profile.codec == codec.name
    check_against_examples(
        profile, [e.output for e in codec.examples], sandbox=CodecSandbox(codec.script)
    )


def test_every_shipped_profile_is_for_a_repository_codec() -> None:
    names = {_codec(path).name for path in CODECS}
    # Tasmota's and Shelly's profiles read the devices' own JSON: no codec.
    shipped = [p for d in shipped_profiles() if (p := parse_profile(d)).codec]
    assert sorted(p.codec or "" for p in shipped) == sorted(names)
    for profile in shipped:
        assert profile.name == profile.codec
        assert profile.description
