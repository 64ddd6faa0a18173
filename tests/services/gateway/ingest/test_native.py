"""Unit tests for `ingest.native`: topics, flat JSON objects, the hand-over to SenML, rejections.

Everything is pure: a fixed `received_at`, explicit `Limits`, bytes in, a batch or a `Rejection`
out. Each rejection test asserts the specific `Reason`, not merely that something was raised.
"""

from __future__ import annotations

import json
import math
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.gateway.ingest.common import METRIC_RE
from services.gateway.ingest.native import DeviceTopic, parse_payload, parse_topic
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from shared.schemas import ReadingBatch
from shared.topics import Domain

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
NOW_UNIX = 1748779200  # NOW as Unix seconds
LIMITS = Limits()
TOPIC = DeviceTopic(domain=Domain.WASTE, device_id="bin-17")
HUGE_INT = "1" + "0" * 400  # beyond float range: float() raises OverflowError
HUGER_INT = "1" + "0" * 5000  # beyond int() string-conversion limit (4300 digits): ValueError


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


def rfc3339(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def readings(batch: ReadingBatch) -> list[tuple[datetime, str, float, str | None]]:
    return [(r.ts, r.metric, r.value, r.unit) for r in batch.readings]


# --------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "domain", "device_id"),
    [
        pytest.param("sensors/waste/bin-17", Domain.WASTE, "bin-17", id="waste"),
        pytest.param("sensors/energy/meter_3", Domain.ENERGY, "meter_3", id="energy"),
        pytest.param("sensors/traffic/cam.north.1", Domain.TRAFFIC, "cam.north.1", id="traffic"),
        pytest.param("sensors/waste/B", Domain.WASTE, "B", id="one-char-id"),
        pytest.param("sensors/waste/7bin", Domain.WASTE, "7bin", id="id-starts-with-digit"),
        pytest.param("sensors/waste/" + "a" * 64, Domain.WASTE, "a" * 64, id="id-64-chars"),
    ],
)
def test_parse_topic_accepts(topic: str, domain: Domain, device_id: str) -> None:
    assert parse_topic(topic) == DeviceTopic(domain=domain, device_id=device_id)


@pytest.mark.parametrize(
    "topic",
    [
        pytest.param("sensor/waste/bin-17", id="prefix-singular"),
        pytest.param("Sensors/waste/bin-17", id="prefix-capitalised"),
        pytest.param("devices/waste/bin-17", id="prefix-other"),
        pytest.param("/sensors/waste/bin-17", id="leading-slash"),
        pytest.param("sensors/water/bin-17", id="unknown-domain"),
        pytest.param("sensors/WASTE/bin-17", id="domain-uppercase"),
        pytest.param("sensors//bin-17", id="domain-empty"),
        pytest.param("sensors/waste/bin-17/extra", id="too-many-levels"),
        pytest.param("sensors/waste/bin-17/", id="trailing-slash"),
        pytest.param("sensors/waste", id="too-few-levels"),
        pytest.param("sensors", id="prefix-only"),
        pytest.param("", id="empty"),
        pytest.param("sensors/waste/", id="device-empty"),
        pytest.param("sensors/waste/-bin", id="device-starts-with-dash"),
        pytest.param("sensors/waste/_bin", id="device-starts-with-underscore"),
        pytest.param("sensors/waste/.bin", id="device-starts-with-dot"),
        pytest.param("sensors/waste/bin 17", id="device-with-space"),
        pytest.param("sensors/waste/+", id="device-wildcard-plus"),
        pytest.param("sensors/waste/#", id="device-wildcard-hash"),
        pytest.param("sensors/waste/bïn", id="device-non-ascii"),
        pytest.param("sensors/waste/" + "a" * 65, id="device-65-chars"),
        pytest.param("sensors/waste/bin-17\n", id="device-trailing-newline"),
    ],
)
def test_parse_topic_rejects(topic: str) -> None:
    with pytest.raises(Rejection) as info:
        parse_topic(topic)
    assert info.value.reason is Reason.BAD_TOPIC


def test_parse_topic_detail_names_the_unknown_domain() -> None:
    with pytest.raises(Rejection) as info:
        parse_topic("sensors/water/bin-17")
    assert "water" in info.value.detail


# --------------------------------------------------------------------------------------------
# Flat JSON objects: accepted
# --------------------------------------------------------------------------------------------


def test_flat_single_metric_without_ts_is_stamped_with_received_at() -> None:
    batch = parse({"fill_pct": 63.5})
    assert batch.device_id == "bin-17"
    assert batch.domain is Domain.WASTE
    assert batch.received_at == NOW
    assert readings(batch) == [(NOW, "fill_pct", 63.5, None)]


def test_flat_several_metrics_share_ts_and_keep_order() -> None:
    batch = parse(b'{"ts": "2025-06-01T11:59:00Z", "fill_pct": 63, "temp_c": -4.5, "lid_open": 0}')
    ts = NOW - timedelta(minutes=1)
    assert readings(batch) == [
        (ts, "fill_pct", 63.0, None),
        (ts, "temp_c", -4.5, None),
        (ts, "lid_open", 0.0, None),
    ]


def test_flat_int_values_become_floats() -> None:
    (reading,) = parse({"count": 12}).readings
    assert type(reading.value) is float
    assert reading.value == 12.0


def test_flat_ts_is_not_a_metric() -> None:
    assert [r.metric for r in parse({"ts": NOW_UNIX, "a": 1}).readings] == ["a"]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        pytest.param("2025-06-01T11:30:00Z", NOW - timedelta(minutes=30), id="rfc3339-z"),
        pytest.param("2025-06-01T11:30:00+00:00", NOW - timedelta(minutes=30), id="rfc3339-utc"),
        pytest.param("2025-06-01T13:30:00+02:00", NOW - timedelta(minutes=30), id="offset-plus"),
        pytest.param("2025-06-01T06:30:00-05:00", NOW - timedelta(minutes=30), id="offset-minus"),
        pytest.param("2025-06-01T17:15:00+05:45", NOW - timedelta(minutes=30), id="offset-5h45"),
        pytest.param(
            "2025-06-01T11:59:59.250Z", NOW - timedelta(milliseconds=750), id="fraction-ms"
        ),
        pytest.param(
            "2025-06-01T11:59:59.000001Z", NOW - timedelta(microseconds=999_999), id="fraction-us"
        ),
        pytest.param(NOW_UNIX, NOW, id="unix-int"),
        pytest.param(NOW_UNIX - 90, NOW - timedelta(seconds=90), id="unix-int-past"),
        pytest.param(NOW_UNIX - 0.5, NOW - timedelta(milliseconds=500), id="unix-float"),
        pytest.param(float(NOW_UNIX), NOW, id="unix-float-whole"),
        pytest.param(None, NOW, id="null-means-received-at"),
    ],
)
def test_flat_ts_forms(ts: Any, expected: datetime) -> None:
    (reading,) = parse({"ts": ts, "fill_pct": 1}).readings
    assert reading.ts == expected
    assert reading.ts.utcoffset() == timedelta(0)


def test_flat_ts_with_offset_is_normalised_to_utc() -> None:
    (reading,) = parse({"ts": "2025-06-01T13:30:00+02:00", "fill_pct": 1}).readings
    assert reading.ts.tzinfo == UTC
    assert (reading.ts.hour, reading.ts.minute) == (11, 30)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(0, id="zero"),
        pytest.param(-273.15, id="negative"),
        pytest.param(1e-300, id="tiny"),
        pytest.param(1.7976931348623157e308, id="max-float"),
        pytest.param(2**53 + 1, id="big-int"),
        pytest.param(10**308, id="int-just-in-float-range"),
    ],
)
def test_flat_extreme_but_finite_values_are_accepted(value: float) -> None:
    (reading,) = parse({"x": value}).readings
    assert reading.value == float(value)
    assert math.isfinite(reading.value)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("a", id="one-letter"),
        pytest.param("fill_pct", id="snake"),
        pytest.param("co2_ppm", id="digits"),
        pytest.param("a_", id="trailing-underscore"),
        pytest.param("a" * 64, id="64-chars"),
    ],
)
def test_flat_valid_metric_names(name: str) -> None:
    assert [r.metric for r in parse({name: 1}).readings] == [name]


# --------------------------------------------------------------------------------------------
# Timestamp window
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        pytest.param(-LIMITS.max_age, True, id="exactly-max-age"),
        pytest.param(-LIMITS.max_age - timedelta(microseconds=1), False, id="just-too-old"),
        pytest.param(LIMITS.max_future, True, id="exactly-max-future"),
        pytest.param(LIMITS.max_future + timedelta(microseconds=1), False, id="just-too-new"),
    ],
)
def test_window_boundaries(offset: timedelta, ok: bool) -> None:
    payload = {"ts": rfc3339(NOW + offset), "x": 1}
    if ok:
        assert parse(payload).readings[0].ts == NOW + offset
    else:
        expected = Reason.TIMESTAMP_TOO_OLD if offset < timedelta(0) else Reason.TIMESTAMP_IN_FUTURE
        assert rejection(payload).reason is expected


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        pytest.param(rfc3339(NOW - timedelta(days=8)), Reason.TIMESTAMP_TOO_OLD, id="8-days-old"),
        pytest.param(rfc3339(NOW - timedelta(days=3650)), Reason.TIMESTAMP_TOO_OLD, id="10y-old"),
        pytest.param(0, Reason.TIMESTAMP_TOO_OLD, id="unix-epoch"),
        pytest.param(-86400, Reason.TIMESTAMP_TOO_OLD, id="unix-negative"),
        pytest.param(NOW_UNIX // 1000, Reason.TIMESTAMP_TOO_OLD, id="unix-divided-by-1000"),
        pytest.param(rfc3339(NOW + timedelta(hours=1)), Reason.TIMESTAMP_IN_FUTURE, id="1h-ahead"),
        pytest.param(NOW_UNIX + 301, Reason.TIMESTAMP_IN_FUTURE, id="unix-301s-ahead"),
        pytest.param(4102444800, Reason.TIMESTAMP_IN_FUTURE, id="unix-year-2100"),
    ],
)
def test_flat_ts_outside_window(ts: Any, reason: Reason) -> None:
    assert rejection({"ts": ts, "x": 1}).reason is reason


def test_window_uses_the_given_limits() -> None:
    tight = Limits(max_age=timedelta(minutes=1), max_future=timedelta(0))
    assert rejection({"ts": NOW_UNIX - 61, "x": 1}, limits=tight).reason is Reason.TIMESTAMP_TOO_OLD
    assert rejection({"ts": NOW_UNIX + 1, "x": 1}, limits=tight).reason is (
        Reason.TIMESTAMP_IN_FUTURE
    )
    assert parse({"ts": NOW_UNIX - 60, "x": 1}, limits=tight).readings[0].ts == NOW - timedelta(
        minutes=1
    )
    loose = Limits(max_age=timedelta(days=365 * 60))
    assert parse({"ts": 0, "x": 1}, limits=loose).readings[0].ts == datetime(1970, 1, 1, tzinfo=UTC)


def test_window_is_relative_to_received_at_not_the_wall_clock() -> None:
    received = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    batch = parse({"ts": "2001-02-03T04:00:00Z", "x": 1}, received_at=received)
    assert batch.readings[0].ts == datetime(2001, 2, 3, 4, 0, 0, tzinfo=UTC)
    assert batch.received_at == received


def test_one_reading_outside_the_window_rejects_the_whole_senml_pack() -> None:
    pack = [{"n": "a", "v": 1}, {"n": "b", "v": 2, "t": -8 * 86400}]
    assert rejection(pack).reason is Reason.TIMESTAMP_TOO_OLD


# --------------------------------------------------------------------------------------------
# Flat JSON objects: rejected
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        pytest.param("last tuesday", id="words"),
        pytest.param("", id="empty-string"),
        pytest.param("2025-13-01T00:00:00Z", id="month-13"),
        pytest.param("2025-06-31T00:00:00Z", id="june-31"),
        pytest.param("2025-06-01T25:00:00Z", id="hour-25"),
        pytest.param("2025-06-01T12:00:00+24:00", id="offset-24h"),
        pytest.param("2025/06/01 12:00:00Z", id="slashes"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param("2025-06-01T12:00:00", id="no-offset"),
        pytest.param("2025-06-01", id="date-only-no-offset"),
        pytest.param("2025-06-01T12:00:00.5", id="fraction-no-offset"),
        pytest.param("0001-01-01T00:00:00+05:00", id="before-year-1-in-utc"),
        pytest.param("9999-12-31T23:59:59-05:00", id="after-year-9999-in-utc"),
        pytest.param(True, id="bool-true"),
        pytest.param(False, id="bool-false"),
        pytest.param([NOW_UNIX], id="list"),
        pytest.param({"s": NOW_UNIX}, id="object"),
        pytest.param(1e20, id="unix-beyond-year-9999"),
        pytest.param(1e300, id="unix-1e300"),
        pytest.param(-1e300, id="unix-minus-1e300"),
    ],
)
def test_flat_invalid_timestamp(ts: Any) -> None:
    assert rejection({"ts": ts, "x": 1}).reason is Reason.INVALID_TIMESTAMP


def test_flat_timestamp_without_offset_says_so() -> None:
    assert "offset" in rejection({"ts": "2025-06-01T12:00:00", "x": 1}).detail


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("63", id="numeric-string"),
        pytest.param("full", id="string"),
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param(None, id="null"),
        pytest.param({"v": 1}, id="nested-object"),
        pytest.param([1, 2], id="list"),
        pytest.param([], id="empty-list"),
    ],
)
def test_flat_non_numeric_value(value: Any) -> None:
    rej = rejection({"fill_pct": value})
    assert rej.reason is Reason.NON_NUMERIC_VALUE
    assert "fill_pct" in rej.detail


def test_flat_one_bad_value_rejects_every_metric() -> None:
    assert rejection({"a": 1, "b": "2", "c": 3}).reason is Reason.NON_NUMERIC_VALUE


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Fill", id="uppercase-first"),
        pytest.param("fillPct", id="camel-case"),
        pytest.param("FILL_PCT", id="all-caps"),
        pytest.param("Fill Level", id="space-and-caps"),
        pytest.param("fill level", id="space"),
        pytest.param("1fill", id="starts-with-digit"),
        pytest.param("_fill", id="starts-with-underscore"),
        pytest.param("fill-pct", id="dash"),
        pytest.param("fill.pct", id="dot"),
        pytest.param("fill/pct", id="slash"),
        pytest.param("", id="empty"),
        pytest.param("é", id="non-ascii"),
        pytest.param("fill_pct\n", id="trailing-newline"),
        pytest.param(" fill_pct", id="leading-space"),
        pytest.param("a" * 65, id="65-chars"),
        pytest.param("a" * 1000, id="1000-chars"),
    ],
)
def test_flat_invalid_metric_name(name: str) -> None:
    assert rejection({name: 1}).reason is Reason.INVALID_METRIC_NAME


def test_invalid_metric_name_detail_is_truncated() -> None:
    assert len(rejection({"A" * 1000: 1}).detail) < 200


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"fill_pct": NaN}', id="nan"),
        pytest.param(b'{"fill_pct": Infinity}', id="infinity"),
        pytest.param(b'{"fill_pct": -Infinity}', id="minus-infinity"),
        pytest.param(b'{"a": 1, "b": NaN}', id="nan-second-metric"),
        pytest.param(b'{"ts": NaN, "a": 1}', id="nan-as-ts"),
        pytest.param(b'{"fill_pct": 1e400}', id="float-overflow"),
        pytest.param(b'{"fill_pct": -1e400}', id="negative-float-overflow"),
        pytest.param(b"NaN", id="bare-nan"),
        pytest.param(b"[NaN]", id="nan-in-array"),
        pytest.param(b'[{"n": "a", "v": Infinity}]', id="senml-infinity"),
        pytest.param(f'{{"fill_pct": {HUGE_INT}}}', id="int-400-digits"),
        pytest.param(f'{{"fill_pct": -{HUGE_INT}}}', id="negative-int-400-digits"),
        pytest.param(f'{{"fill_pct": {HUGER_INT}}}', id="int-5000-digits"),
        pytest.param(f'{{"ts": {HUGE_INT}, "a": 1}}', id="ts-int-400-digits"),
        pytest.param(f'[{{"n": "a", "v": {HUGE_INT}}}]', id="senml-v-int-400-digits"),
        pytest.param(f'[{{"n": "a", "v": 1, "t": {HUGE_INT}}}]', id="senml-t-int-400-digits"),
        pytest.param(f'[{{"n": "a", "s": {HUGE_INT}}}]', id="senml-s-int-400-digits"),
        pytest.param(f'[{{"n": "a", "v": {HUGER_INT}}}]', id="senml-v-int-5000-digits"),
        pytest.param(b'[{"n": "a", "v": 1.7e308, "bv": 1.7e308}]', id="senml-v-plus-bv-overflows"),
        pytest.param(b'[{"bv": 1e400, "n": "a", "v": 1}]', id="senml-bv-infinite"),
        pytest.param(b'[{"bt": 1e400, "n": "a", "v": 1}]', id="senml-bt-infinite"),
    ],
)
def test_non_finite_numbers(payload: bytes | str) -> None:
    assert rejection(payload).reason is Reason.NON_FINITE_NUMBER


def test_flat_too_many_metrics() -> None:
    limits = Limits(max_records=3)
    assert len(parse({"a": 1, "b": 2, "c": 3}, limits=limits).readings) == 3
    assert rejection({"a": 1, "b": 2, "c": 3, "d": 4}, limits=limits).reason is (
        Reason.TOO_MANY_RECORDS
    )


# --------------------------------------------------------------------------------------------
# Decoding and shape
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xff\xfe\x00{", id="utf16-bom"),
        pytest.param(b'{"fill_pct": 1}\xff', id="trailing-ff"),
        pytest.param(b"\xc3\x28", id="bad-continuation"),
        pytest.param('{"caf\xe9": 1}'.encode("latin-1"), id="latin-1"),
        pytest.param(b"\xed\xa0\x80", id="encoded-surrogate"),
        pytest.param(b"\xc0\xaf", id="overlong"),
        pytest.param(b'{"a": 1, "b": "\xe2\x82"}', id="truncated-sequence"),
    ],
)
def test_not_utf8(payload: bytes) -> None:
    assert rejection(payload).reason is Reason.NOT_UTF8


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"hello sensor", id="text"),
        pytest.param(b"", id="empty"),
        pytest.param(b"   \n", id="whitespace"),
        pytest.param(b'{"fill_pct": 12.', id="truncated-number"),
        pytest.param(b'{"fill_pct": 12', id="truncated-object"),
        pytest.param(b'[{"n": "a", "v": 1}', id="truncated-array"),
        pytest.param(b'{"fill_pct": 1,}', id="trailing-comma"),
        pytest.param(b"{'fill_pct': 1}", id="single-quotes"),
        pytest.param(b"{fill_pct: 1}", id="unquoted-key"),
        pytest.param(b'{"a": 1}{"b": 2}', id="two-documents"),
        pytest.param(b'{"a": 1} // comment', id="comment"),
        pytest.param(b'{"a": 01}', id="leading-zero"),
        pytest.param(b'{"a": .5}', id="bare-fraction"),
        pytest.param(b'{"a": 0x10}', id="hex"),
        pytest.param(b'{"a": nan}', id="lowercase-nan"),
        pytest.param(b'{"a": inf}', id="inf"),
        pytest.param(b'\xef\xbb\xbf{"a": 1}', id="utf8-bom"),
        pytest.param(b"[" * 50_000 + b"]" * 50_000, id="nested-too-deeply"),
    ],
)
def test_invalid_json(payload: bytes) -> None:
    limits = Limits(max_bytes=200_000)
    assert rejection(payload, limits=limits).reason is Reason.INVALID_JSON


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"42", id="number"),
        pytest.param(b"-1.5", id="negative-float"),
        pytest.param(b'"fill_pct"', id="string"),
        pytest.param(b"true", id="true"),
        pytest.param(b"null", id="null"),
        pytest.param(b"[1, 2]", id="array-of-numbers"),
        pytest.param(b'["fill_pct"]', id="array-of-strings"),
        pytest.param(b"[null]", id="array-of-null"),
        pytest.param(b'[[{"n": "a", "v": 1}]]', id="array-of-arrays"),
        pytest.param(b'[{"n": "a", "v": 1}, 2]', id="second-record-not-an-object"),
    ],
)
def test_wrong_shape(payload: bytes) -> None:
    assert rejection(payload).reason is Reason.WRONG_SHAPE


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b"[]", id="empty-array"),
        pytest.param(b" { } ", id="empty-object-whitespace"),
        pytest.param({"ts": NOW_UNIX}, id="ts-only"),
        pytest.param([{"bn": "bin-17/"}], id="senml-base-only"),
        pytest.param([{"bn": "bin-17/"}, {"bt": NOW_UNIX}, {}], id="senml-base-and-empty"),
    ],
)
def test_no_metrics(payload: Any) -> None:
    assert rejection(payload).reason is Reason.NO_METRICS


def test_payload_of_one_mebibyte_is_too_large() -> None:
    payload = b'{"fill_pct": 1, "pad": "' + b"x" * (1024 * 1024) + b'"}'
    rej = rejection(payload)
    assert rej.reason is Reason.PAYLOAD_TOO_LARGE
    assert str(len(payload)) in rej.detail


def test_size_is_checked_before_decoding() -> None:
    assert rejection(b"\xff" * (LIMITS.max_bytes + 1)).reason is Reason.PAYLOAD_TOO_LARGE


@pytest.mark.parametrize(
    ("pad", "ok"),
    [pytest.param(0, True, id="at-limit"), pytest.param(1, False, id="one-byte-over")],
)
def test_size_limit_is_inclusive(pad: int, ok: bool) -> None:
    body = b'{"x": 1}'
    limits = Limits(max_bytes=len(body) + 10)
    payload = body + b" " * (10 + pad)  # trailing JSON whitespace
    if ok:
        assert len(parse(payload, limits=limits).readings) == 1
    else:
        assert rejection(payload, limits=limits).reason is Reason.PAYLOAD_TOO_LARGE


def test_size_is_counted_in_bytes_not_characters() -> None:
    payload = '{"x": 1}' + "\u3000" * 4  # not JSON whitespace, but size comes first
    limits = Limits(max_bytes=len(payload) + 1)  # characters fit, bytes (3 each) do not
    assert rejection(payload, limits=limits).reason is Reason.PAYLOAD_TOO_LARGE


# --------------------------------------------------------------------------------------------
# Property-style: no input crashes the parser
# --------------------------------------------------------------------------------------------

# fmt: off
KEYS = ["ts", "bn", "bt", "bu", "bv", "bver", "n", "v", "s", "t", "u", "vs", "vb", "vd",
        "fill_pct", "temp_c", "Bad Name", "", "x" * 70]
NUMBERS: list[Any] = [0, 1, -1, 1.5, -0.0, 63.5, 1e-300]
NASTY_NUMBERS: list[Any] = [
    1e308, -1e308, 1.7e308, 2**28, -(2**28), 2**28 - 1, 10**20, int(HUGE_INT), -int(HUGE_INT),
]
ATOMS: list[Any] = [
    *NUMBERS, *NASTY_NUMBERS, NOW_UNIX, NOW_UNIX + 0.5, -60, True, False, None, "",
    "fill_pct", "urn:dev:ow:1:", "bin-17/", "2025-06-01T12:00:00Z", "2025-06-01T12:00:00",
    "0001-01-01T00:00:00+05:00", "x" * 20, "\ud800", "é", [], {},
]
# Spliced in as raw text, since json.dumps cannot produce them.
RAW_TOKENS = [
    b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", HUGE_INT.encode(),
    HUGER_INT.encode(), b"1.7e308", b"\xff", b"\xc3", b"{", b"}", b"[", b"]", b",", b":",
    b'"', b"\\", b"\\u", b"null", b"true", b"\x00",
]
# fmt: on


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    """Arbitrary JSON-ish structure, mostly rejected."""
    roll = rng.random()
    if depth >= 3 or roll < 0.45:
        return rng.choice(ATOMS)
    if roll < 0.75:
        return {rng.choice(KEYS): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]


def _random_flat(rng: random.Random) -> dict[str, Any]:
    """A valid flat object, then with some luck one or two fields perturbed."""
    doc: dict[str, Any] = {"ts": rng.choice([None, NOW_UNIX - 30, "2025-06-01T11:59:00Z"])}
    for name in rng.sample(["fill_pct", "temp_c", "count"], rng.randint(1, 3)):
        doc[name] = rng.choice(NUMBERS)
    for _ in range(rng.choice([0, 0, 1, 2])):
        doc[rng.choice([*doc, *KEYS])] = rng.choice(ATOMS)
    return doc


def _random_senml(rng: random.Random) -> list[dict[str, Any]]:
    """A valid SenML pack, then with some luck one or two fields of a record perturbed."""
    pack: list[dict[str, Any]] = [
        {"bn": rng.choice(["", "bin-17/", "urn:dev:ow:1:"]), "bt": rng.choice([0, NOW_UNIX])},
    ]
    for _ in range(rng.randint(1, 5)):
        record: dict[str, Any] = {
            "n": rng.choice(["fill_pct", "temp_c"]),
            rng.choice(["v", "s"]): rng.choice(NUMBERS),
        }
        if rng.random() < 0.5:
            record["t"] = rng.choice([-60, -1.5, 0, 10])
        if rng.random() < 0.3:
            record[rng.choice(["u", "bu"])] = rng.choice(["Cel", "%", "kWh"])
        if rng.random() < 0.3:
            record["bv"] = rng.choice(NUMBERS)
        pack.append(record)
    for _ in range(rng.choice([0, 0, 1, 2])):
        record = rng.choice(pack)
        record[rng.choice([*record, *KEYS])] = rng.choice(ATOMS)
    return pack


def _random_doc(rng: random.Random) -> bytes:
    make = rng.choice([_random_json, _random_flat, _random_senml])
    return json.dumps(make(rng)).encode("utf-8", "surrogatepass")


NUMBER_RE = re.compile(rb"-?[0-9][0-9.eE+-]*")


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        numbers = list(NUMBER_RE.finditer(buf))
        if op == 5 and numbers:  # replace a number literal with a raw token
            m = rng.choice(numbers)
            buf[m.start() : m.end()] = rng.choice(RAW_TOKENS)
            continue
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a byte
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:  # delete a span
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == 2:  # splice a token
            buf[pos:pos] = rng.choice(RAW_TOKENS)
        elif op == 3:  # duplicate a span
            buf[pos:pos] = buf[pos : pos + rng.randint(1, 16)]
        else:  # truncate
            del buf[pos:]
    return bytes(buf)


def _check_total(payload: bytes) -> None:
    """Either a valid batch or a `Rejection`: anything else escapes and fails the test."""
    try:
        batch = parse_payload(TOPIC, payload, received_at=NOW, limits=LIMITS)
    except Rejection as rej:
        assert isinstance(rej.reason, Reason), payload
        assert isinstance(rej.detail, str), payload
        rej.detail.encode()  # dead letters carry the detail: it must be encodable
        return
    assert batch.readings, payload
    for r in batch.readings:
        assert METRIC_RE.fullmatch(r.metric), (payload, r.metric)
        assert math.isfinite(r.value), (payload, r.value)
        assert NOW - LIMITS.max_age <= r.ts <= NOW + LIMITS.max_future, (payload, r.ts)
        assert r.unit is None or (isinstance(r.unit, str) and len(r.unit) <= 16), payload
    # What the gateway produces, the storage service must be able to read back.
    assert ReadingBatch.from_bytes(batch.to_bytes()) == batch, payload


def _seeds(n: int) -> list[Any]:
    return [pytest.param(seed, id=f"seed-{seed}") for seed in range(n)]


@pytest.mark.parametrize("seed", _seeds(5))
def test_random_bytes_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        _check_total(rng.randbytes(rng.randint(0, 64)))


@pytest.mark.parametrize("seed", _seeds(5))
def test_random_json_documents_never_crash(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(100):
        _check_total(_random_doc(rng))


@pytest.mark.parametrize("seed", _seeds(5))
def test_mutated_valid_payloads_never_crash(seed: int) -> None:
    rng = random.Random(2000 + seed)
    valid = [
        json.dumps({"ts": rfc3339(NOW), "fill_pct": 63.5, "temp_c": 4}).encode(),
        json.dumps({"ts": NOW_UNIX - 10, "count": 3}).encode(),
        json.dumps(
            [
                {"bver": 10, "bn": "urn:dev:ow:1:", "bt": NOW_UNIX, "bu": "Cel", "bv": 1},
                {"n": "temp_c", "v": 20.5, "t": -5},
                {"n": "humidity", "u": "%RH", "s": 40},
            ]
        ).encode(),
    ]
    for _ in range(100):
        _check_total(_mutate(rng, rng.choice(valid)))


def test_random_generators_reach_both_outcomes() -> None:
    """Guards the property tests above against only ever exercising one branch."""
    rng = random.Random(7)
    accepted = rejected = 0
    reasons: set[Reason] = set()
    for _ in range(500):
        try:
            parse_payload(TOPIC, _random_doc(rng), received_at=NOW, limits=LIMITS)
            accepted += 1
        except Rejection as rej:
            rejected += 1
            reasons.add(rej.reason)
    assert accepted > 0
    assert rejected > 0
    assert len(reasons) >= 6


# --------------------------------------------------------------------------------------------
# Rejection itself
# --------------------------------------------------------------------------------------------


def test_rejection_is_an_exception_carrying_reason_and_detail() -> None:
    rej = Rejection(Reason.NO_METRICS, "nothing")
    assert isinstance(rej, Exception)
    assert (rej.reason, rej.detail) == (Reason.NO_METRICS, "nothing")
    assert Rejection(Reason.BAD_TOPIC).detail == ""


def test_reason_values_are_stable_snake_case_strings() -> None:
    """Reasons are metric labels and dead-letter fields: they must stay plain strings."""
    for reason in Reason:
        assert reason.value == reason.name.lower()
        assert str(reason) == reason.value


def test_received_at_in_another_zone_compares_correctly() -> None:
    paris = timezone(timedelta(hours=2))
    received = NOW.astimezone(paris)
    batch = parse({"ts": rfc3339(NOW - timedelta(minutes=1)), "x": 1}, received_at=received)
    (reading,) = batch.readings
    assert reading.ts == NOW - timedelta(minutes=1)
