"""Unit tests for `ingest.senml`: SenML (RFC 8428) packs as TownPulse's topics deliver them.

Packs go through `native.parse_payload`, the way the gateway hands a JSON array to SenML, so the
time window and the record limit apply as in production. Each rejection test asserts the
specific `Reason`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.gateway.ingest.native import DeviceTopic, parse_payload
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from services.gateway.ingest.senml import SENML_RELATIVE_TIME_LIMIT
from shared.schemas import ReadingBatch
from shared.topics import Domain

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
NOW_UNIX = 1748779200  # NOW as Unix seconds
LIMITS = Limits()
TOPIC = DeviceTopic(domain=Domain.WASTE, device_id="bin-17")
HUGE_INT = "1" + "0" * 400  # beyond float range: float() raises OverflowError


def _raw(payload: bytes | str | Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload).encode()


def parse(
    payload: bytes | str | Any, *, limits: Limits = LIMITS, received_at: datetime = NOW
) -> ReadingBatch:
    """Bytes are sent as is, str is UTF-8 encoded, anything else is JSON-encoded first."""
    return parse_payload(TOPIC, _raw(payload), received_at=received_at, limits=limits)


def rejection(payload: bytes | str | Any, *, limits: Limits = LIMITS) -> Rejection:
    with pytest.raises(Rejection) as info:
        parse(payload, limits=limits)
    assert isinstance(info.value.reason, Reason)
    assert isinstance(info.value.detail, str)
    return info.value


def readings(batch: ReadingBatch) -> list[tuple[datetime, str, float, str | None]]:
    return [(r.ts, r.metric, r.value, r.unit) for r in batch.readings]


# --------------------------------------------------------------------------------------------
# SenML: accepted
# --------------------------------------------------------------------------------------------


def test_senml_single_record_without_times_is_now() -> None:
    batch = parse([{"n": "fill_pct", "v": 63}])
    assert readings(batch) == [(NOW, "fill_pct", 63.0, None)]
    assert batch.device_id == "bin-17"
    assert batch.domain is Domain.WASTE


@pytest.mark.parametrize(
    ("pack", "metric"),
    [
        pytest.param(
            [{"bn": "urn:dev:ow:10e2073a01080063:", "n": "temperature_c", "v": 1}],
            "temperature_c",
            id="urn-base-name",
        ),
        pytest.param([{"bn": "bin-17/", "n": "fill_pct", "v": 1}], "fill_pct", id="slash-base"),
        pytest.param([{"bn": "fill_", "n": "pct", "v": 1}], "fill_pct", id="concatenated"),
        pytest.param([{"bn": "fill_pct", "v": 1}], "fill_pct", id="base-name-only"),
        pytest.param([{"n": "bin-17/lid/angle_deg", "v": 1}], "angle_deg", id="path-in-n"),
        pytest.param([{"bn": "dev:", "n": "a/b:c", "v": 1}], "c", id="mixed-separators"),
        pytest.param([{"n": "fill_pct", "v": 1}], "fill_pct", id="no-base-name"),
    ],
)
def test_senml_metric_is_last_segment_of_resolved_name(pack: list[Any], metric: str) -> None:
    assert [r.metric for r in parse(pack).readings] == [metric]


def test_senml_base_fields_apply_to_following_records() -> None:
    pack = [
        {"bver": 10, "bn": "urn:dev:mac:0024befffe804ff1:", "bt": NOW_UNIX, "bu": "Cel", "bv": 20},
        {"n": "temp_c", "v": 1.5, "t": -60},
        {"n": "temp_c", "v": 2.5, "t": -30},
        {"n": "humidity", "u": "%RH", "v": 40},
        {"n": "count", "s": 7},
    ]
    assert readings(parse(pack)) == [
        (NOW - timedelta(seconds=60), "temp_c", 21.5, "Cel"),
        (NOW - timedelta(seconds=30), "temp_c", 22.5, "Cel"),
        (NOW, "humidity", 60.0, "%RH"),
        (NOW, "count", 7.0, "Cel"),  # bv is added to v, never to s
    ]


def test_senml_later_base_fields_replace_earlier_ones() -> None:
    pack = [
        {"bn": "a:", "bu": "W", "bv": 100, "n": "x", "v": 1},
        {"bn": "b:", "bu": "kWh", "bv": 0, "n": "y", "v": 1},
        {"n": "z", "v": 1},
    ]
    assert readings(parse(pack)) == [
        (NOW, "x", 101.0, "W"),
        (NOW, "y", 1.0, "kWh"),
        (NOW, "z", 1.0, "kWh"),
    ]


def test_senml_base_only_record_between_value_records() -> None:
    pack = [{"n": "a", "v": 1}, {"bu": "m"}, {"n": "b", "v": 2}]
    assert readings(parse(pack)) == [(NOW, "a", 1.0, None), (NOW, "b", 2.0, "m")]


def test_senml_unknown_fields_are_ignored() -> None:
    pack = [{"n": "a", "v": 1, "ut": 60, "foo": "bar"}]
    assert readings(parse(pack)) == [(NOW, "a", 1.0, None)]


@pytest.mark.parametrize("bver", [1, 5, 10], ids=lambda v: f"bver-{v}")
def test_senml_supported_versions(bver: int) -> None:
    assert len(parse([{"bver": bver, "n": "a", "v": 1}]).readings) == 1


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param({}, NOW, id="no-time"),
        pytest.param({"t": 0}, NOW, id="t-zero"),
        pytest.param({"t": -60}, NOW - timedelta(seconds=60), id="t-minus-60"),
        pytest.param({"t": -0.5}, NOW - timedelta(milliseconds=500), id="t-fractional"),
        pytest.param({"t": 120}, NOW + timedelta(seconds=120), id="t-plus-120"),
        pytest.param({"bt": -120, "t": 60}, NOW - timedelta(seconds=60), id="bt-plus-t-relative"),
        pytest.param({"bt": NOW_UNIX}, NOW, id="bt-absolute"),
        pytest.param({"bt": NOW_UNIX, "t": -30}, NOW - timedelta(seconds=30), id="bt-plus-t"),
        pytest.param({"t": NOW_UNIX - 5}, NOW - timedelta(seconds=5), id="t-absolute"),
        pytest.param({"t": NOW_UNIX + 0.25}, NOW + timedelta(milliseconds=250), id="t-abs-float"),
    ],
)
def test_senml_times(record: dict[str, Any], expected: datetime) -> None:
    (reading,) = parse([{"n": "a", "v": 1, **record}]).readings
    assert reading.ts == expected


def test_senml_base_time_carries_over_to_later_records() -> None:
    pack = [{"bt": NOW_UNIX - 100}, {"n": "a", "v": 1, "t": 10}, {"n": "b", "v": 1, "t": 20}]
    assert [r.ts for r in parse(pack).readings] == [
        NOW - timedelta(seconds=90),
        NOW - timedelta(seconds=80),
    ]


@pytest.mark.parametrize(
    ("t", "reason"),
    [
        # Just below 2**28: relative, so about 8.5 years ahead.
        pytest.param(SENML_RELATIVE_TIME_LIMIT - 1, Reason.TIMESTAMP_IN_FUTURE, id="2**28-1"),
        # From 2**28 on: absolute seconds since the epoch, i.e. in 1978.
        pytest.param(SENML_RELATIVE_TIME_LIMIT, Reason.TIMESTAMP_TOO_OLD, id="2**28"),
        # Negative values below -2**28 are still relative (RFC 8428 4.5.3): about 8.5 years ago.
        pytest.param(-SENML_RELATIVE_TIME_LIMIT - 1, Reason.TIMESTAMP_TOO_OLD, id="-2**28-1"),
        pytest.param(1e300, Reason.INVALID_TIMESTAMP, id="absolute-out-of-range"),
        pytest.param(-1e300, Reason.INVALID_TIMESTAMP, id="relative-out-of-range"),
    ],
)
def test_senml_time_limits(t: float, reason: Reason) -> None:
    assert rejection([{"n": "a", "v": 1, "t": t}]).reason is reason


@pytest.mark.parametrize(
    "t",
    [
        pytest.param(-SENML_RELATIVE_TIME_LIMIT - 1, id="-2**28-1"),
        pytest.param(-2 * SENML_RELATIVE_TIME_LIMIT, id="-2**29"),
    ],
)
def test_senml_negative_times_are_relative_to_now(t: int) -> None:
    """RFC 8428 4.5.3: any resolved time below 2**28 is relative, not just |t| < 2**28."""
    limits = Limits(max_age=timedelta(days=365 * 100))
    (reading,) = parse([{"n": "a", "v": 1, "t": t}], limits=limits).readings
    assert reading.ts == NOW + timedelta(seconds=t)


def test_senml_v_wins_over_s() -> None:
    (reading,) = parse([{"bv": 1, "n": "a", "v": 2, "s": 100}]).readings
    assert reading.value == 3.0


@pytest.mark.parametrize(
    ("unit_fields", "unit"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({"u": "Cel"}, "Cel", id="u"),
        pytest.param({"bu": "Cel"}, "Cel", id="bu"),
        pytest.param({"bu": "Cel", "u": "K"}, "K", id="u-overrides-bu"),
        pytest.param({"u": "x" * 16}, "x" * 16, id="16-chars"),
        pytest.param({"u": "°C"}, "°C", id="non-ascii-printable"),
        pytest.param({"u": "µg/m3"}, "µg/m3", id="micrograms"),
        pytest.param({"u": "m s-1"}, "m s-1", id="with-space"),
    ],
)
def test_senml_units(unit_fields: dict[str, str], unit: str | None) -> None:
    (reading,) = parse([{"n": "a", "v": 1, **unit_fields}]).readings
    assert reading.unit == unit


def test_senml_batch_survives_a_serialisation_round_trip() -> None:
    batch = parse([{"bn": "bin-17/", "bu": "%", "n": "fill_pct", "v": 63.5, "t": -1}])
    assert ReadingBatch.from_bytes(batch.to_bytes()) == batch


def test_senml_lone_surrogate_unit_is_rejected_not_serialised() -> None:
    payload = b'[{"n": "a", "v": 1, "u": "\\ud800"}]'  # valid JSON, valid UTF-8
    rej = rejection(payload)
    assert rej.reason is Reason.BAD_BASE_FIELD
    rej.detail.encode()  # the detail goes into the dead letter: it must encode


def test_senml_pack_at_record_limit_is_accepted() -> None:
    limits = Limits(max_records=3)
    assert len(parse([{"n": "a", "v": i} for i in range(3)], limits=limits).readings) == 3


# --------------------------------------------------------------------------------------------
# SenML: rejected
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pack", "limits"),
    [
        pytest.param([{"n": "a", "v": 1}] * 4, Limits(max_records=3), id="4-over-3"),
        pytest.param([{"n": "a", "v": 1}] * 1001, LIMITS, id="1001-over-default-1000"),
        pytest.param([{"bu": "m"}] * 1001, LIMITS, id="base-only-records-count-too"),
        pytest.param([1] * 1001, LIMITS, id="counted-before-records-are-checked"),
    ],
)
def test_senml_too_many_records(pack: list[Any], limits: Limits) -> None:
    assert rejection(pack, limits=limits).reason is Reason.TOO_MANY_RECORDS


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"bt": "yesterday"}, id="bt-string"),
        pytest.param({"bt": True}, id="bt-bool"),
        pytest.param({"bt": None}, id="bt-null"),
        pytest.param({"bt": [NOW_UNIX]}, id="bt-list"),
        pytest.param({"bt": int(HUGE_INT)}, id="bt-huge-int"),
        pytest.param({"bn": 17}, id="bn-number"),
        pytest.param({"bn": True}, id="bn-bool"),
        pytest.param({"bn": None}, id="bn-null"),
        pytest.param({"bn": ["a"]}, id="bn-list"),
        pytest.param({"bu": ["Cel"]}, id="bu-list"),
        pytest.param({"bu": 1}, id="bu-number"),
        pytest.param({"bu": "x" * 17}, id="bu-17-chars"),
        pytest.param({"u": 1}, id="u-number"),
        pytest.param({"u": ["Cel"]}, id="u-list"),
        pytest.param({"u": "x" * 17}, id="u-17-chars"),
        # A lone surrogate decodes from JSON but cannot be encoded again: the batch could not be
        # serialised for Kafka. NUL cannot be stored in PostgreSQL text.
        pytest.param({"u": "\ud800"}, id="u-lone-surrogate"),
        pytest.param({"bu": "\udfff"}, id="bu-lone-surrogate"),
        pytest.param({"u": "C\x00"}, id="u-nul"),
        pytest.param({"u": "Cel\n"}, id="u-newline"),
        pytest.param({"bv": "1"}, id="bv-string"),
        pytest.param({"bv": False}, id="bv-bool"),
        pytest.param({"bv": int(HUGE_INT)}, id="bv-huge-int"),
        pytest.param({"bver": 99}, id="bver-99"),
        pytest.param({"bver": 11}, id="bver-11"),
        pytest.param({"bver": 0}, id="bver-0"),
        pytest.param({"bver": -1}, id="bver-negative"),
        pytest.param({"bver": "10"}, id="bver-string"),
        pytest.param({"bver": 10.0}, id="bver-float"),
        pytest.param({"bver": True}, id="bver-bool"),
        pytest.param({"bver": None}, id="bver-null"),
    ],
)
def test_senml_bad_base_field(record: dict[str, Any]) -> None:
    assert rejection([{"n": "a", "v": 1, **record}]).reason is Reason.BAD_BASE_FIELD


def test_senml_bad_base_field_in_a_base_only_record() -> None:
    rej = rejection([{"n": "a", "v": 1}, {"bt": "yesterday"}, {"n": "b", "v": 1}])
    assert rej.reason is Reason.BAD_BASE_FIELD
    assert "record 1" in rej.detail


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"n": "status", "vs": "full"}, id="vs"),
        pytest.param({"n": "lid_open", "vb": True}, id="vb"),
        pytest.param({"n": "blob", "vd": "aGVsbG8"}, id="vd"),
        pytest.param({"n": "a", "v": 1, "vs": "x"}, id="v-and-vs"),
        pytest.param({"vb": False}, id="vb-without-name"),
    ],
)
def test_senml_unsupported_value_type(record: dict[str, Any]) -> None:
    assert rejection([record]).reason is Reason.UNSUPPORTED_VALUE_TYPE


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"n": "a"}, id="name-without-value"),
        pytest.param({"bv": 5, "n": "a"}, id="name-and-bv-only"),
        pytest.param({"n": "a", "v": "63"}, id="v-string"),
        pytest.param({"n": "a", "v": True}, id="v-bool"),
        pytest.param({"n": "a", "v": None}, id="v-null"),
        pytest.param({"n": "a", "v": {"x": 1}}, id="v-object"),
        pytest.param({"n": "a", "v": [1]}, id="v-list"),
        pytest.param({"n": "a", "s": "7"}, id="s-string"),
        pytest.param({"n": "a", "s": None}, id="s-null"),
    ],
)
def test_senml_non_numeric_value(record: dict[str, Any]) -> None:
    assert rejection([record]).reason is Reason.NON_NUMERIC_VALUE


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"n": "Temp", "v": 1}, id="uppercase"),
        pytest.param({"n": "temp c", "v": 1}, id="space"),
        pytest.param({"n": "1temp", "v": 1}, id="starts-with-digit"),
        pytest.param({"n": "a" * 65, "v": 1}, id="65-chars"),
        pytest.param({"n": 17, "v": 1}, id="n-number"),
        pytest.param({"n": None, "v": 1}, id="n-null"),
        pytest.param({"n": ["a"], "v": 1}, id="n-list"),
        pytest.param({"v": 1}, id="no-name-at-all"),
        pytest.param({"bn": "urn:dev:ow:", "v": 1}, id="empty-last-segment"),
        pytest.param({"n": "urn:dev:ow:10e2073a01080063", "v": 1}, id="rfc-example-hex-id"),
        pytest.param({"bn": "Dev:", "n": "Temp", "v": 1}, id="base-and-name-invalid"),
        pytest.param({"n": "temp\n", "v": 1}, id="trailing-newline"),
    ],
)
def test_senml_invalid_metric_name(record: dict[str, Any]) -> None:
    assert rejection([record]).reason is Reason.INVALID_METRIC_NAME


@pytest.mark.parametrize(
    "t",
    [
        pytest.param("2025-06-01T12:00:00Z", id="string"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="null"),
        pytest.param([0], id="list"),
    ],
)
def test_senml_invalid_t(t: Any) -> None:
    assert rejection([{"n": "a", "v": 1, "t": t}]).reason is Reason.INVALID_TIMESTAMP


def test_senml_rejection_detail_names_the_record() -> None:
    rej = rejection([{"n": "a", "v": 1}, {"n": "b", "v": 1}, {"n": "c", "vs": "x"}])
    assert rej.reason is Reason.UNSUPPORTED_VALUE_TYPE
    assert "record 2" in rej.detail
