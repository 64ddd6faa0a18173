"""Unit tests for `ingest.profile`: profile definitions, their validation, and the arithmetic
that turns decoded fields into readings."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.gateway.ingest.codec import CodecSandbox
from services.gateway.ingest.profile import (
    METRICS,
    PROFILES_DIR,
    MemoryCounters,
    MetricSpec,
    Profile,
    ProfileError,
    check_against_examples,
    map_fields,
    parse_profile,
    shipped_profiles,
    with_domain_metrics,
)
from services.gateway.ingest.rejection import Reason, Rejection
from shared import domains
from shared.domains import ManifestError
from shared.domains import Metric as DomainMetric
from shared.topics import Domain
from tests.domain_support import extra_domain

pytestmark = pytest.mark.unit

TS = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def profile(*readings: dict[str, Any], **extra: Any) -> Profile:
    return parse_profile(
        {
            "name": "test-device",
            "domain": "energy",
            "codec": "test-codec",
            **extra,
            "readings": list(readings),
        }
    )


def mapped(
    p: Profile,
    data: dict[str, Any],
    *,
    metadata: dict[str, Any] | None = None,
    counters: MemoryCounters | None = None,
) -> dict[str, float]:
    readings = map_fields(
        p,
        data,
        device_id="dev-1",
        ts=TS,
        metadata=metadata or {},
        counters=counters if counters is not None else MemoryCounters(),
    )
    return {r.metric: r.value for r in readings}


def rejected(p: Profile, data: dict[str, Any], **kwargs: Any) -> Rejection:
    with pytest.raises(Rejection) as caught:
        mapped(p, data, **kwargs)
    return caught.value


# ---- the catalogue and parsing -------------------------------------------------------------------


def test_the_catalogue_knows_the_metrics_profiles_need() -> None:
    for name in [
        "energy_kwh",
        "power_w",
        "current_a",
        "voltage_v",
        "power_factor",
        "fill_pct",
        "distance_mm",
        "temperature_c",
        "vehicles",
        "people",
        "speed_kmh",
        "occupied",
        "battery_pct",
        "battery_v",
        "pulse_count",
        "energy_total_kwh",
        "rssi_dbm",
        "snr_db",
    ]:
        assert name in METRICS
    assert [f"circuit_{n}_on" in METRICS for n in range(1, 10)] == [True] * 8 + [False]
    assert METRICS["fill_pct"].lo == 0 and METRICS["fill_pct"].hi == 100
    assert METRICS["energy_kwh"].unit == "kWh"


def test_a_profile_is_parsed() -> None:
    p = profile(
        {
            "metric": "energy_kwh",
            "field": "pulse",
            "op": "delta",
            "total_metric": "pulse_count",
            "scale": {"device": "kwh_per_pulse", "default": 0.001},
            "modulus": 2**32,
        },
        {"metric": "battery_pct", "field": "battery"},
        description="a meter",
    )
    assert (p.name, p.domain, p.codec, p.description) == (
        "test-device",
        Domain.ENERGY,
        "test-codec",
        "a meter",
    )
    assert p.counter_metrics == ("pulse_count",)
    assert p.metrics == ("energy_kwh", "pulse_count", "battery_pct")
    assert [r.op for r in p.readings] == ["delta", "copy"]


GOOD = {"metric": "battery_pct", "field": "battery"}


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"readings": [{"metric": "fill_level", "field": "d"}]}, "unknown metric 'fill_level'"),
        ({"readings": [{"metric": "fill_pct", "field": "d", "op": "sqrt"}]}, "unknown op 'sqrt'"),
        ({"name": "Bad Name"}, "name 'Bad Name'"),
        ({"name": "x" * 65}, "name"),
        ({"domain": "parking"}, "domain 'parking'"),
        ({"codec": "../x"}, "codec"),
        ({"readings": []}, "readings"),
        ({"readings": [GOOD] * 65}, "readings"),
        ({"readings": [GOOD, GOOD]}, "'battery_pct' is made by two readings"),
        ({"colour": "red"}, "unknown key(s) 'colour'"),
        ({"readings": [{**GOOD, "scal": 2}]}, "unknown key(s) 'scal'"),
        ({"readings": [{**GOOD, "scale": {"device": "k"}}]}, "needs a default"),
        ({"readings": [{**GOOD, "scale": "2"}]}, "a number"),
        ({"readings": [{**GOOD, "scale": [1, 2, 3, 4, 5]}]}, "1 to 4 factors"),
        ({"readings": [{**GOOD, "offset": float("nan")}]}, "finite number"),
        ({"readings": [{**GOOD, "field": "a..b"}]}, "dotted field path"),
        ({"readings": [{**GOOD, "field": ""}]}, "field path"),
        ({"readings": [{**GOOD, "op": "enum"}]}, "values"),
        ({"readings": [{**GOOD, "op": "product"}]}, "by"),
        (
            {"readings": [{"metric": "fill_pct", "field": "d", "op": "fill_from_distance"}]},
            "depth_mm",
        ),
        ({"readings": [{"metric": "energy_kwh", "field": "p", "op": "delta"}]}, "total_metric"),
        (
            {
                "readings": [
                    {
                        "metric": "energy_kwh",
                        "field": "p",
                        "op": "delta",
                        "total_metric": "pulse_count",
                        "modulus": 0,
                    }
                ]
            },
            "must be > 0",
        ),
        (
            {
                "readings": [
                    {"metric": "energy_kwh", "field": "p", "op": "delta", "total_metric": "pulses"}
                ]
            },
            "unknown metric 'pulses'",
        ),
        ({"examples": [{"f_port": 85, "bytes": "zz"}]}, "hex"),
        ({"examples": [{"f_port": 300, "bytes": "00"}]}, "f_port"),
        ({"examples": [{"data": {"a": 1}}]}, "unknown key(s) 'data'"),
        ({"codec": None, "examples": [{"f_port": 1, "bytes": "00"}]}, "unknown key(s)"),
    ],
)
def test_a_bad_profile_is_refused_with_its_reason(doc: dict[str, Any], reason: str) -> None:
    base = {"name": "ok", "domain": "waste", "codec": "c", "readings": [GOOD]}
    with pytest.raises(ProfileError) as caught:
        parse_profile({**base, **doc})
    assert reason in str(caught.value)


# ---- the ops -------------------------------------------------------------------------------------


def test_copy_with_scale_and_offset() -> None:
    p = profile(
        {"metric": "energy_total_kwh", "field": "wh", "scale": 0.001},
        {"metric": "temperature_c", "field": "f", "scale": 0.5, "offset": -16},
        {"metric": "battery_pct", "field": "battery"},
    )
    assert mapped(p, {"wh": 12500, "f": 100, "battery": 87}) == {
        "energy_total_kwh": 12.5,
        "temperature_c": 34.0,
        "battery_pct": 87.0,
    }
    readings = map_fields(
        p, {"wh": 1}, device_id="d", ts=TS, metadata={}, counters=MemoryCounters()
    )
    assert [(r.ts, r.unit) for r in readings] == [(TS, "kWh")]


def test_power_from_current_and_voltage() -> None:
    p = profile(
        {
            "metric": "power_w",
            "field": "current",
            "op": "product",
            "by": [
                {"device": "voltage_v", "default": 230},
                {"device": "power_factor", "default": 1},
            ],
        },
        {"metric": "current_a", "field": "current"},
    )
    assert mapped(p, {"current": 2}) == {"power_w": 460.0, "current_a": 2.0}
    assert mapped(p, {"current": 2}, metadata={"voltage_v": 400, "power_factor": 0.8}) == {
        "power_w": 640.0,
        "current_a": 2.0,
    }
    # The voltage measured by the device itself: a field factor.
    q = profile(
        {"metric": "power_w", "field": "current", "op": "product", "by": [{"field": "volts"}]}
    )
    assert mapped(q, {"current": 2, "volts": 231}) == {"power_w": 462.0}
    # A frame without the voltage makes no power (and here nothing at all).
    assert rejected(q, {"current": 2}).reason is Reason.NO_METRICS


def test_a_device_setting_of_the_wrong_type() -> None:
    p = profile(
        {
            "metric": "power_w",
            "field": "current",
            "op": "product",
            "by": [{"device": "voltage_v", "default": 230}],
        }
    )
    for setting in ("230", True, [230], float("inf")):
        rejection = rejected(p, {"current": 1}, metadata={"voltage_v": setting})
        assert rejection.reason is Reason.FIELD_TYPE
        assert "voltage_v" in rejection.detail
    # An explicit null is no setting: the default.
    assert mapped(p, {"current": 1}, metadata={"voltage_v": None}) == {"power_w": 230.0}


def test_occupancy_from_a_boolean() -> None:
    p = profile({"metric": "occupied", "field": "occupied", "op": "bool"})
    assert mapped(p, {"occupied": True}) == {"occupied": 1.0}
    assert mapped(p, {"occupied": False}) == {"occupied": 0.0}
    for value in (1, "true"):
        assert rejected(p, {"occupied": value}).reason is Reason.FIELD_TYPE


def test_circuit_states_from_strings() -> None:
    p = profile(
        *[
            {
                "metric": f"circuit_{n}_on",
                "field": f"switch_{n}",
                "op": "enum",
                "values": {"on": 1, "off": 0},
            }
            for n in (1, 2)
        ]
    )
    assert mapped(p, {"switch_1": "on", "switch_2": "off"}) == {
        "circuit_1_on": 1.0,
        "circuit_2_on": 0.0,
    }
    rejection = rejected(p, {"switch_1": "dimmed"})
    assert rejection.reason is Reason.FIELD_TYPE
    assert "'dimmed'" in rejection.detail and "on, off" in rejection.detail
    assert rejected(p, {"switch_1": 1}).reason is Reason.FIELD_TYPE


FILL = {
    "metric": "fill_pct",
    "field": "distance",
    "op": "fill_from_distance",
    "depth_mm": {"device": "bin_depth_mm", "default": 1000},
    "mount_mm": {"device": "mount_mm", "default": 0},
}


@pytest.mark.parametrize(
    ("distance", "metadata", "fill"),
    [
        (1000, {}, 0.0),  # the bottom of a 1000 mm bin (default depth)
        (250, {}, 75.0),
        (0, {}, 100.0),
        (1500, {}, 0.0),  # beyond the bottom: clipped
        (300, {"bin_depth_mm": 1200, "mount_mm": 100}, 100 * (1200 - 200) / 1200),
        (50, {"mount_mm": 100}, 100.0),  # above the full line: clipped
    ],
)
def test_fill_from_distance(distance: int, metadata: dict[str, Any], fill: float) -> None:
    assert mapped(profile(FILL), {"distance": distance}, metadata=metadata) == {
        "fill_pct": pytest.approx(fill)
    }


def test_fill_in_centimetres_and_a_bad_depth() -> None:
    p = profile({**FILL, "scale": 10})
    assert mapped(p, {"distance": 25}) == {"fill_pct": 75.0}
    rejection = rejected(p, {"distance": 25}, metadata={"bin_depth_mm": 0})
    assert rejection.reason is Reason.OUT_OF_RANGE
    assert "depth" in rejection.detail


DELTA = {
    "metric": "energy_kwh",
    "field": "pulse",
    "op": "delta",
    "total_metric": "pulse_count",
    "scale": {"device": "kwh_per_pulse", "default": 0.001},
    "modulus": 2**32,
}


def test_a_counters_first_sighting_gives_its_total_only() -> None:
    counters = MemoryCounters()
    assert mapped(profile(DELTA), {"pulse": 5000}, counters=counters) == {"pulse_count": 5000.0}
    assert counters.previous("dev-1", "pulse_count") == 5000


@pytest.mark.parametrize(
    ("modulus", "previous", "count", "kwh"),
    [
        (2**32, 5000, 5250, 0.25),  # 250 pulses
        (2**32, 5000, 5000, 0.0),  # nothing used
        (2**32, 2**32 - 100, 150, 0.25),  # wrapped: 100 to the top, 150 after
        (2**32, 5000, 120, 0.12),  # far from the top: a reset, counting from zero
        (2**16, 2**15, 10, (2**16 - 2**15 + 10) / 1000),  # upper half of the range: a wrap
        (2**16, 2**15 - 1, 10, 0.01),  # lower half: a reset
    ],
)
def test_a_counters_interval(modulus: int, previous: int, count: int, kwh: float) -> None:
    counters = MemoryCounters()
    counters.remember("dev-1", "pulse_count", previous)
    p = profile({**DELTA, "modulus": modulus})
    assert mapped(p, {"pulse": count}, counters=counters) == {
        "energy_kwh": pytest.approx(kwh),
        "pulse_count": float(count),
    }
    assert counters.previous("dev-1", "pulse_count") == count


def test_a_counter_without_modulus_only_resets() -> None:
    p = profile({k: v for k, v in DELTA.items() if k != "modulus"})
    counters = MemoryCounters()
    counters.remember("dev-1", "pulse_count", 2**32 - 1)
    assert mapped(p, {"pulse": 7}, counters=counters)["energy_kwh"] == pytest.approx(0.007)


def test_an_interval_beyond_the_metrics_range_is_refused() -> None:
    counters = MemoryCounters()
    counters.remember("dev-1", "pulse_count", 0)
    rejection = rejected(profile(DELTA), {"pulse": 2**31}, counters=counters)
    assert rejection.reason is Reason.OUT_OF_RANGE
    assert "energy_kwh" in rejection.detail
    assert counters.previous("dev-1", "pulse_count") == 0


def test_per_device_units_per_pulse() -> None:
    counters = MemoryCounters()
    counters.remember("dev-1", "pulse_count", 100)
    assert mapped(
        profile(DELTA), {"pulse": 110}, metadata={"kwh_per_pulse": 0.5}, counters=counters
    ) == {"energy_kwh": 5.0, "pulse_count": 110.0}


@pytest.mark.parametrize("count", [-1, 2**32, 1.5e300])
def test_a_count_outside_the_counters_range(count: float) -> None:
    rejection = rejected(profile(DELTA), {"pulse": count})
    assert rejection.reason is Reason.OUT_OF_RANGE
    assert "pulse_count" in rejection.detail


def test_counts_are_kept_only_when_the_whole_uplink_is_taken() -> None:
    p = profile(DELTA, {"metric": "battery_pct", "field": "battery"})
    counters = MemoryCounters()
    counters.remember("dev-1", "pulse_count", 100)
    assert rejected(p, {"pulse": 300, "battery": 140}, counters=counters).reason is (
        Reason.OUT_OF_RANGE
    )
    assert counters.previous("dev-1", "pulse_count") == 100
    # The next uplink's interval holds what the refused one counted.
    assert mapped(p, {"pulse": 400, "battery": 80}, counters=counters)["energy_kwh"] == (
        pytest.approx(0.3)
    )


def test_counters_are_per_device() -> None:
    counters = MemoryCounters()
    counters.remember("other", "pulse_count", 10)
    assert mapped(profile(DELTA), {"pulse": 50}, counters=counters) == {"pulse_count": 50.0}


def test_memory_counters_are_bounded() -> None:
    counters = MemoryCounters(max_devices=2)
    for device in ("a", "b", "c"):
        counters.remember(device, "pulse_count", 1)
    assert counters.previous("a", "pulse_count") is None
    assert counters.previous("c", "pulse_count") == 1


# ---- fields --------------------------------------------------------------------------------------


def test_dotted_paths() -> None:
    p = profile(
        {"metric": "people", "field": "line_1.period_in"},
        {"metric": "energy_total_kwh", "field": "ENERGY.Total"},
        {"metric": "energy_total_wh", "field": "aenergy.total"},
        {"metric": "people_present", "field": "regions.1.count"},
    )
    data = {
        "line_1": {"period_in": 4, "period_out": 2},
        "ENERGY": {"Total": 12.25, "Power": 40},
        "aenergy": {"total": 3100.5, "by_minute": [1, 2]},
        "regions": [{"count": 0}, {"count": 3}],
    }
    assert mapped(p, data) == {
        "people": 4.0,
        "energy_total_kwh": 12.25,
        "energy_total_wh": 3100.5,
        "people_present": 3.0,
    }
    # Missing steps are an absent field; a step through a scalar is a wrong type.
    assert mapped(p, {"line_1": {"period_in": 1}, "regions": [{"count": 0}]}) == {"people": 1.0}
    rejection = rejected(p, {"ENERGY": "12.25"})
    assert rejection.reason is Reason.FIELD_TYPE
    assert "ENERGY.Total" in rejection.detail


def test_absent_and_null_fields_are_skipped_and_nothing_at_all_is_refused() -> None:
    p = profile(
        {"metric": "battery_v", "field": "battery_voltage"},
        {"metric": "occupied", "field": "occupied", "op": "bool"},
    )
    assert mapped(p, {"occupied": False}) == {"occupied": 0.0}
    assert mapped(p, {"occupied": None, "battery_voltage": 3.3}) == {"battery_v": 3.3}
    rejection = rejected(p, {"firmware_version": "2.4.9"})
    assert rejection.reason is Reason.NO_METRICS
    assert "battery_voltage" in rejection.detail and "occupied" in rejection.detail


@pytest.mark.parametrize("value", ["92", True, [92], {"v": 92}])
def test_a_field_of_the_wrong_type(value: Any) -> None:
    rejection = rejected(profile(GOOD), {"battery": value})
    assert rejection.reason is Reason.FIELD_TYPE
    assert "battery" in rejection.detail


@pytest.mark.parametrize(
    ("metric", "value"),
    [
        ("battery_pct", 101),
        ("battery_pct", -1),
        ("temperature_c", 900),
        ("voltage_v", -5),
        ("power_factor", 95),
        ("battery_pct", float("inf")),
        ("battery_pct", 10**400),
    ],
)
def test_a_value_outside_its_metrics_range(metric: str, value: float) -> None:
    rejection = rejected(profile({"metric": metric, "field": "x"}), {"x": value})
    assert rejection.reason is Reason.OUT_OF_RANGE
    assert metric in rejection.detail or "too large" in rejection.detail


# ---- metrics declared by the domains' manifests ----------------------------------------------


def test_each_domains_own_metrics_are_the_gateways_with_its_unit_and_range() -> None:
    declared = [(m.name, x) for m in domains.registered() for x in m.metrics]
    assert ("lighting", "dimming_pct") in [(d, x.name) for d, x in declared]
    for _, metric in declared:
        assert METRICS[metric.name] == MetricSpec(metric.unit, metric.lo, metric.hi)


def test_a_manifests_metric_is_mapped_within_its_range_and_refused_outside() -> None:
    dimming = next(x for m in domains.registered() for x in m.metrics if x.name == "dimming_pct")
    lamp = parse_profile(
        {
            "name": "test-lamp",
            "domain": "lighting",
            "readings": [{"metric": "dimming_pct", "field": "dim"}],
        }
    )
    assert mapped(lamp, {"dim": dimming.hi}) == {"dimming_pct": dimming.hi}
    for value in (dimming.lo - 1, dimming.hi + 1):
        rejection = rejected(lamp, {"dim": value})
        assert rejection.reason is Reason.OUT_OF_RANGE
        assert "dimming_pct" in rejection.detail


def test_a_new_domains_metric_joins_and_one_redefining_the_gateways_is_refused() -> None:
    lamps = dataclasses.replace(
        extra_domain(), metrics=(DomainMetric("lamp_hours", "h", 0.0, 1e6),)
    )
    merged = with_domain_metrics(METRICS, [lamps])
    assert merged["lamp_hours"] == MetricSpec("h", 0.0, 1e6)
    assert {k: v for k, v in merged.items() if k != "lamp_hours"} == dict(METRICS)
    clash = dataclasses.replace(lamps, metrics=(DomainMetric("fill_pct", "%", 0.0, 150.0),))
    with pytest.raises(ManifestError, match="fill_pct is already the gateway's"):
        with_domain_metrics(METRICS, [clash])


# ---- against the codec's examples ----------------------------------------------------------------

OUTPUTS: list[dict[str, Any]] = [
    {"data": {"battery": 92, "distance": 2116, "tilt": "tilt", "line_1": {"total_in": 72}}},
    {"data": {"battery": 90}},
    {"errors": ["a vector that must fail"]},
]


def test_a_profile_that_reads_what_the_examples_output_passes() -> None:
    check_against_examples(
        profile(
            GOOD,
            {**FILL},
            {"metric": "tilted", "field": "tilt", "op": "enum", "values": {"normal": 0, "tilt": 1}},
            {
                "metric": "people",
                "field": "line_1.total_in",
                "op": "delta",
                "total_metric": "people_in_total",
            },
        ),
        OUTPUTS,
    )


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (
            {"metric": "temperature_c", "field": "temperature"},
            "field 'temperature' never appears in the codec's examples",
        ),
        ({"metric": "people", "field": "line_2.total_in"}, "never appears"),
        (
            {
                "metric": "power_w",
                "field": "battery",
                "op": "product",
                "by": [{"field": "voltage"}],
            },
            "field 'voltage' never appears",
        ),
        ({"metric": "tilted", "field": "tilt"}, "is a string in the examples; copy needs a number"),
        ({"metric": "occupied", "field": "battery", "op": "bool"}, "bool needs a boolean"),
        (
            {"metric": "tilted", "field": "tilt", "op": "enum", "values": {"normal": 0}},
            "no number in `values` for 'tilt'",
        ),
    ],
)
def test_a_field_the_examples_never_output_is_refused(reading: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProfileError) as caught:
        check_against_examples(profile(GOOD, reading), OUTPUTS)
    assert reason in str(caught.value)


def test_the_profiles_own_example_frames_count_when_decoded() -> None:
    sandbox = CodecSandbox(
        "function decodeUplink(i) { return i.bytes[0] === 1 ? {data: {voltage: 230}}"
        " : {errors: ['unknown frame']}; }"
    )
    reading = {"metric": "voltage_v", "field": "voltage"}
    p = profile(GOOD, reading, examples=[{"f_port": 85, "bytes": "01"}])
    with pytest.raises(ProfileError, match="'voltage' never appears"):
        check_against_examples(p, OUTPUTS)  # not decoded without the codec
    check_against_examples(p, OUTPUTS, sandbox=sandbox)
    bad = profile(GOOD, reading, examples=[{"f_port": 85, "bytes": "02"}])
    with pytest.raises(ProfileError, match=r"examples\[0\] does not decode: codec_error"):
        check_against_examples(bad, OUTPUTS, sandbox=sandbox)


def test_a_profile_without_codec_checks_its_own_example_objects() -> None:
    tasmota = parse_profile(
        {
            "name": "tasmota-plug",
            "domain": "energy",
            "readings": [
                {
                    "metric": "energy_kwh",
                    "field": "ENERGY.Total",
                    "op": "delta",
                    "total_metric": "energy_total_kwh",
                },
                {"metric": "power_w", "field": "ENERGY.Power"},
            ],
            "examples": [
                {"data": {"Time": "2026-12-07T10:00:00", "ENERGY": {"Total": 12.5, "Power": 40}}}
            ],
        }
    )
    assert tasmota.codec is None
    check_against_examples(tasmota, [])
    counters = MemoryCounters()
    counters.remember("dev-1", "energy_total_kwh", 12.0)
    assert mapped(tasmota, {"ENERGY": {"Total": 12.5, "Power": 40}}, counters=counters) == {
        "energy_kwh": 0.5,
        "energy_total_kwh": 12.5,
        "power_w": 40.0,
    }


# ---- shipped profiles ----------------------------------------------------------------------------


def test_shipped_profiles_parse_and_are_named_after_their_file() -> None:
    docs = shipped_profiles()
    assert len(docs) == 10  # the eight LoRaWAN devices, Tasmota and Shelly
    files = sorted(p.stem for p in PROFILES_DIR.glob("*.json"))
    assert [d["name"] for d in docs] == files
    for doc in docs:
        parsed = parse_profile(doc)
        assert parsed.description
        assert json.loads(json.dumps(doc)) == doc
