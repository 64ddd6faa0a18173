"""Unit tests for `ingest.mapped`: Tasmota and Shelly Gen2 energy meters' own JSON on MQTT.

The messages are the devices' documented ones: Tasmota's `tele/<topic>/SENSOR` with its ENERGY
block (kWh) and Shelly's switch status with `aenergy` (Wh).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.gateway.app import MQTT_SUBSCRIPTIONS
from services.gateway.ingest.common import MAX_DEPTH, body_digest
from services.gateway.ingest.mapped import (
    EXTERNAL_SUBSCRIPTIONS,
    parse_shelly,
    parse_tasmota,
    topic_device,
    townpulse_topic,
)
from services.gateway.ingest.native import DeviceTopic
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from services.gateway.ingest.uplink import Link, Uplink
from shared.topics import Domain

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 7, 10, 0, 5, tzinfo=UTC)
LIMITS = Limits()
MINUTE_TS = 1796637600  # 2026-12-07T10:00:00Z
BERLIN = ZoneInfo("Europe/Berlin")

TASMOTA: dict[str, Any] = {
    "Time": "2026-12-07T11:00:00",
    "ENERGY": {
        "TotalStartTime": "2026-01-12T09:12:44",
        "Total": 12.345,
        "Yesterday": 0.812,
        "Today": 0.204,
        "Period": 2,
        "Power": 120,
        "ApparentPower": 131,
        "ReactivePower": 52,
        "Factor": 0.92,
        "Voltage": 230,
        "Current": 0.52,
    },
}
SHELLY: dict[str, Any] = {
    "id": 0,
    "source": "timer",
    "output": True,
    "apower": 12.3,
    "voltage": 230.1,
    "freq": 50.0,
    "current": 0.1,
    "aenergy": {"total": 1234.5, "by_minute": [205.1, 210.0, 198.7], "minute_ts": MINUTE_TS},
    "ret_aenergy": {"total": 0.0, "by_minute": [0.0, 0.0, 0.0], "minute_ts": MINUTE_TS},
    "temperature": {"tC": 40.1, "tF": 104.2},
}


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def tasmota(doc: Any, **kwargs: Any) -> Uplink:
    raw = doc if isinstance(doc, bytes) else body(doc)
    kwargs.setdefault("received_at", NOW)
    kwargs.setdefault("limits", LIMITS)
    return parse_tasmota("kitchen-plug", raw, **kwargs)


def shelly(doc: Any, **kwargs: Any) -> Uplink:
    raw = doc if isinstance(doc, bytes) else body(doc)
    kwargs.setdefault("received_at", NOW)
    kwargs.setdefault("limits", LIMITS)
    return parse_shelly("shellyplus1pm-a8032ab12345", raw, **kwargs)


def rejected(parse: Any, doc: Any, **kwargs: Any) -> Rejection:
    with pytest.raises(Rejection) as info:
        parse(doc, **kwargs)
    assert isinstance(info.value.reason, Reason)
    info.value.detail.encode()
    return info.value


# --------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        pytest.param("tele/kitchen-plug/SENSOR", ("tasmota", "kitchen-plug"), id="tas"),
        pytest.param("tele/tasmota_8C1F64/SENSOR", ("tasmota", "tasmota_8C1F64")),
        pytest.param(
            "shellyplus1pm-a8032ab12345/status/switch:0",
            ("shelly", "shellyplus1pm-a8032ab12345"),
            id="shelly-switch-0",
        ),
        pytest.param(
            "shellypro4pm-a8032ab12345/status/switch:3",
            ("shelly", "shellypro4pm-a8032ab12345:switch:3"),
            id="shelly-switch-3",
        ),
        pytest.param(
            "sensors/energy/meter-3/tele/SENSOR",
            ("tasmota", "meter-3"),
            id="townpulse-tasmota",
        ),
        pytest.param(
            "sensors/energy/meter-3/status/switch:0",
            ("shelly", "meter-3"),
            id="townpulse-shelly",
        ),
    ],
)
def test_topic_device(topic: str, expected: tuple[str, str]) -> None:
    assert topic_device(topic) == expected


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        pytest.param(
            "sensors/energy/meter-3/tele/SENSOR",
            ("tasmota", DeviceTopic(domain=Domain.ENERGY, device_id="meter-3")),
            id="tasmota",
        ),
        pytest.param(
            "sensors/waste/bin-17/status/switch:0",
            ("shelly", DeviceTopic(domain=Domain.WASTE, device_id="bin-17")),
            id="shelly",
        ),
        pytest.param("sensors/energy/meter-3", None, id="native"),
        pytest.param("sensors/energy/meter-3/status/switch:1", None, id="second-switch"),
        pytest.param("sensors/gas/meter-3/tele/SENSOR", None, id="unknown-domain"),
        pytest.param("tele/meter-3/SENSOR", None, id="external"),
    ],
)
def test_townpulse_topic(topic: str, expected: tuple[str, DeviceTopic] | None) -> None:
    assert townpulse_topic(topic) == expected


@pytest.mark.parametrize(
    "topic",
    [
        pytest.param("tele/kitchen-plug/STATE", id="tasmota-state"),
        pytest.param("tele/kitchen-plug/LWT", id="tasmota-lwt"),
        pytest.param("stat/kitchen-plug/POWER", id="tasmota-stat"),
        pytest.param("tele//SENSOR", id="tasmota-no-name"),
        pytest.param("tele/-plug/SENSOR", id="tasmota-name-dash-first"),
        pytest.param("tele/kitchen plug/SENSOR", id="tasmota-name-space"),
        pytest.param("tele/a/b/SENSOR", id="tasmota-nested"),
        pytest.param("shelly1/status/switch", id="shelly-no-index"),
        pytest.param("shelly1/status/switch:", id="shelly-empty-index"),
        pytest.param("shelly1/status/switch:x", id="shelly-letter-index"),
        pytest.param("shelly1/status/switch:01", id="shelly-leading-zero"),
        pytest.param("shelly1/status/switch:16", id="shelly-index-16"),
        pytest.param("shelly1/status/switch:-1", id="shelly-negative"),
        pytest.param("shelly1/status/switch:²", id="shelly-superscript"),
        pytest.param("shelly1/status/sys", id="shelly-sys"),
        pytest.param("shelly1/status/cover:0", id="shelly-cover"),
        pytest.param("shelly1/events/rpc", id="shelly-events"),
        pytest.param("home/shelly1/status/switch:0", id="shelly-nested-prefix"),
        pytest.param("sensors/energy/meter-3", id="townpulse-native"),
        pytest.param("sensors/energy/meter-3/status/switch:1", id="townpulse-switch-1"),
        pytest.param("sensors/water/meter-3/tele/SENSOR", id="townpulse-unknown-domain"),
        pytest.param("sensors/energy/-meter/tele/SENSOR", id="townpulse-bad-device-id"),
        pytest.param("sensors/energy/meter-3/tele/STATE", id="townpulse-tasmota-state"),
        pytest.param("application/a/device/0102030405060708/event/up", id="chirpstack"),
        pytest.param("", id="empty"),
    ],
)
def test_topic_device_refuses(topic: str) -> None:
    assert topic_device(topic) is None


def test_every_recognised_topic_is_subscribed() -> None:
    def matches(pattern: str, topic: str) -> bool:
        p, t = pattern.split("/"), topic.split("/")
        return len(p) == len(t) and all(a in ("+", b) for a, b in zip(p, t, strict=True))

    for topic in ("tele/plug/SENSOR", "shelly1/status/switch:0"):
        assert any(matches(p, topic) for p in EXTERNAL_SUBSCRIPTIONS), topic
    for topic in ("sensors/energy/m-1/tele/SENSOR", "sensors/energy/m-1/status/switch:0"):
        assert any(matches(p, topic) for p in MQTT_SUBSCRIPTIONS[1:]), topic


# --------------------------------------------------------------------------------------------
# Tasmota
# --------------------------------------------------------------------------------------------


def test_tasmota_local_time_without_a_zone_is_the_arrival() -> None:
    raw = body(TASMOTA)
    assert tasmota(raw) == Uplink(
        source="tasmota",
        device_key="kitchen-plug",
        time=NOW,
        payload=None,
        decoded=TASMOTA,
        f_port=None,
        f_cnt=None,
        dedup_id=body_digest(raw),
        application=None,
        link=Link(),
    )


def test_tasmota_local_time_in_the_configured_zone() -> None:
    assert tasmota(TASMOTA, zone=BERLIN).time == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def test_tasmota_local_time_in_summer() -> None:
    doc = {**TASMOTA, "Time": "2026-07-01T12:00:00"}
    received = datetime(2026, 7, 1, 10, 0, 30, tzinfo=UTC)
    assert tasmota(doc, zone=BERLIN, received_at=received).time == received - timedelta(seconds=30)


def test_tasmota_time_with_an_offset_is_used_as_it_is() -> None:
    doc = {**TASMOTA, "Time": "2026-12-07T11:00:00+01:00"}  # SetOption52
    assert tasmota(doc).time == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert tasmota(doc, zone=ZoneInfo("America/New_York")).time == datetime(
        2026, 12, 7, 10, 0, tzinfo=UTC
    )


def test_tasmota_without_time_is_the_arrival() -> None:
    doc = {"ENERGY": TASMOTA["ENERGY"]}
    assert tasmota(doc, zone=BERLIN).time == NOW


def test_tasmota_other_sensors_are_kept() -> None:
    doc = {"Time": "2026-12-07T11:00:00", "DS18B20": {"Temperature": 21.4}, "TempUnit": "C"}
    assert tasmota(doc).decoded == doc


def test_tasmota_unknown_fields_are_kept_for_the_profile() -> None:
    doc = {**TASMOTA, "ENERGY": {**TASMOTA["ENERGY"], "ExportActive": 0.0}, "Extra": [1]}
    assert tasmota(doc).decoded == doc


@pytest.mark.parametrize(
    ("time", "reason"),
    [
        pytest.param("yesterday", Reason.INVALID_TIMESTAMP, id="words"),
        pytest.param("2026-13-07T11:00:00", Reason.INVALID_TIMESTAMP, id="month-13"),
        # An unsynchronised Tasmota counts from 1970.
        pytest.param("1970-01-01T00:05:12", Reason.TIMESTAMP_TOO_OLD, id="no-ntp"),
        pytest.param("2026-12-07T13:00:00", Reason.TIMESTAMP_IN_FUTURE, id="wrong-zone"),
    ],
)
def test_tasmota_bad_times_in_a_zone(time: str, reason: Reason) -> None:
    assert rejected(tasmota, {**TASMOTA, "Time": time}, zone=BERLIN).reason is reason


def test_tasmota_unparseable_time_is_refused_even_without_a_zone() -> None:
    assert rejected(tasmota, {**TASMOTA, "Time": "soon"}).reason is Reason.INVALID_TIMESTAMP


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        pytest.param({"Time": "2026-12-07T11:00:00"}, "no sensor", id="time-only"),
        pytest.param({}, "no sensor", id="empty"),
        pytest.param({**TASMOTA, "Time": 1796637600}, "Time", id="time-number"),
        pytest.param({**TASMOTA, "ENERGY": [12.3]}, "ENERGY", id="energy-list"),
        pytest.param({**TASMOTA, "ENERGY": "12.3"}, "ENERGY", id="energy-string"),
        pytest.param({**TASMOTA, "Name": "a\u0000b"}, "NUL", id="nul"),
    ],
)
def test_tasmota_malformed(doc: dict[str, Any], field: str) -> None:
    rej = rejected(tasmota, doc)
    assert rej.reason is Reason.BAD_EVENT
    assert field in rej.detail


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"ON", Reason.INVALID_JSON, id="plain-text"),
        pytest.param(b"", Reason.INVALID_JSON, id="empty"),
        pytest.param(b"\xff", Reason.NOT_UTF8, id="not-utf8"),
        pytest.param(b"[1]", Reason.BAD_EVENT, id="array"),
        pytest.param(b'{"ENERGY": {"Total": NaN}}', Reason.NON_FINITE_NUMBER, id="nan"),
        pytest.param(b'{"ENERGY": {"Total": 1e999}}', Reason.NON_FINITE_NUMBER, id="overflow"),
    ],
)
def test_tasmota_malformed_bodies(raw: bytes, reason: Reason) -> None:
    assert rejected(tasmota, raw).reason is reason


def test_tasmota_size_limit() -> None:
    raw = body(TASMOTA)
    assert tasmota(raw, limits=Limits(max_bytes=len(raw))).decoded == TASMOTA
    rej = rejected(tasmota, raw, limits=Limits(max_bytes=len(raw) - 1))
    assert rej.reason is Reason.PAYLOAD_TOO_LARGE


def test_tasmota_device_name_that_cannot_name_a_device() -> None:
    with pytest.raises(Rejection) as info:
        parse_tasmota("bad name", body(TASMOTA), received_at=NOW, limits=LIMITS)
    assert info.value.reason is Reason.BAD_TOPIC


# --------------------------------------------------------------------------------------------
# Shelly
# --------------------------------------------------------------------------------------------


def test_shelly_status() -> None:
    raw = body(SHELLY)
    assert shelly(raw) == Uplink(
        source="shelly",
        device_key="shellyplus1pm-a8032ab12345",
        time=datetime.fromtimestamp(MINUTE_TS, tz=UTC),
        payload=None,
        decoded=SHELLY,
        f_port=None,
        f_cnt=None,
        dedup_id=body_digest(raw),
        application=None,
        link=Link(),
    )


def test_shelly_without_aenergy_is_the_arrival() -> None:
    doc = {"id": 0, "source": "button", "output": False, "temperature": {"tC": 38.0}}
    assert shelly(doc).time == NOW


def test_shelly_minute_ts_outside_the_window() -> None:
    doc = {**SHELLY, "aenergy": {**SHELLY["aenergy"], "minute_ts": 946684800}}  # the year 2000
    assert rejected(shelly, doc).reason is Reason.TIMESTAMP_TOO_OLD
    doc = {**SHELLY, "aenergy": {**SHELLY["aenergy"], "minute_ts": MINUTE_TS + 3600}}
    assert rejected(shelly, doc).reason is Reason.TIMESTAMP_IN_FUTURE


def test_shelly_two_statuses_in_one_minute_are_two_messages() -> None:
    first, second = {**SHELLY, "apower": 12.3}, {**SHELLY, "apower": 80.0}
    assert shelly(first).time == shelly(second).time
    assert shelly(first).dedup_key != shelly(second).dedup_key


def test_shelly_the_same_message_twice_is_one() -> None:
    raw = body(SHELLY)
    assert shelly(raw).dedup_key == shelly(raw, received_at=NOW + timedelta(seconds=20)).dedup_key


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        pytest.param({**SHELLY, "id": "0"}, "id", id="id-string"),
        pytest.param({**SHELLY, "id": True}, "id", id="id-bool"),
        pytest.param({**SHELLY, "aenergy": 1234.5}, "aenergy", id="aenergy-number"),
        pytest.param(
            {**SHELLY, "aenergy": {"total": "1234.5"}}, "aenergy.total", id="total-string"
        ),
        pytest.param(
            {**SHELLY, "aenergy": {"total": 1.0, "minute_ts": "now"}},
            "aenergy.minute_ts",
            id="minute-ts-string",
        ),
        pytest.param(
            {**SHELLY, "aenergy": {"total": 1.0, "minute_ts": 10**400}},
            "aenergy.minute_ts",
            id="minute-ts-huge",
        ),
        pytest.param({**SHELLY, "source": "\ud800"}, "surrogate", id="lone-surrogate"),
    ],
)
def test_shelly_malformed(doc: dict[str, Any], field: str) -> None:
    raw = json.dumps(doc).encode()  # \ud800 stays an escape: valid JSON, a bad string
    rej = rejected(shelly, raw)
    assert rej.reason is Reason.BAD_EVENT
    assert field in rej.detail


def test_shelly_minute_ts_out_of_range() -> None:
    doc = {**SHELLY, "aenergy": {"total": 1.0, "minute_ts": 1e18}}
    assert rejected(shelly, doc).reason is Reason.INVALID_TIMESTAMP


def test_shelly_nested_too_deeply() -> None:
    deep: dict[str, Any] = {"v": 1}
    for _ in range(MAX_DEPTH):
        deep = {"a": deep}
    assert rejected(shelly, {**SHELLY, "x": deep}).reason is Reason.BAD_EVENT


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"true", Reason.BAD_EVENT, id="bool"),
        pytest.param(b"{", Reason.INVALID_JSON, id="truncated"),
        pytest.param(b'{"apower": -Infinity}', Reason.NON_FINITE_NUMBER, id="infinity"),
    ],
)
def test_shelly_malformed_bodies(raw: bytes, reason: Reason) -> None:
    assert rejected(shelly, raw).reason is reason


def test_received_at_in_another_zone() -> None:
    received = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert shelly(SHELLY, received_at=received).time == datetime.fromtimestamp(MINUTE_TS, tz=UTC)
