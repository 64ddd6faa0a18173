"""Unit tests for `ingest.chirpstack`: ChirpStack v4 uplink events as its JSON marshaler sends them.

Events are built with ChirpStack's own message classes (PyPI `chirpstack-api`) and serialised the
way ChirpStack does (`chirpstack_json`), never written by hand; only the bad inputs are made by
editing such an event. The golden event carries a real device's bytes and decoded object: the
Milesight EM310-UDL test vector of the TTN Device Repository.
"""

from __future__ import annotations

import base64
import json
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from chirpstack_api import common, gw, integration
from google.protobuf import json_format

from services.gateway.ingest import chirpstack
from services.gateway.ingest.chirpstack import parse_uplink, subscription, topic_device
from services.gateway.ingest.common import MAX_DEPTH
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from services.gateway.ingest.uplink import Link, Uplink

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 7, 10, 0, 5, tzinfo=UTC)
UPLINK_TIME = datetime(2026, 12, 7, 10, 0, 0, 123456, tzinfo=UTC)
LIMITS = Limits()
DEV_EUI = "24e124136b502217"
APPLICATION = "2c8b5a4e-0f3a-4b1e-9d5c-1a2b3c4d5e6f"
DEDUP_ID = "9a3c8f1e-5b7d-4c2a-8e6f-0d1b2c3a4e5f"
TOPIC = f"application/{APPLICATION}/device/{DEV_EUI}/event/up"
REPOSITORY = Path(
    os.environ.get(
        "TOWNPULSE_DEVICE_REPOSITORY",
        Path(__file__).resolve().parents[4].parent / "shared" / "data" / "lorawan-devices",
    )
)


def em310_vector() -> tuple[bytes, int, dict[str, Any]]:
    """The EM310-UDL example of the Device Repository: (bytes, fPort, decoded data)."""
    codec = yaml.safe_load(
        (REPOSITORY / "vendor" / "milesight-iot" / "em310-udl-codec.yaml").read_text()
    )
    (example,) = codec["uplinkDecoder"]["examples"]
    return (
        bytes(example["input"]["bytes"]),
        example["input"]["fPort"],
        example["output"]["data"],
    )


def rx(gateway: str, *, rssi: int, snr: float, gw_time: str | None = None) -> gw.UplinkRxInfo:
    info = gw.UplinkRxInfo(
        gateway_id=gateway,
        uplink_id=4711,
        rssi=rssi,
        snr=snr,
        channel=2,
        crc_status=gw.CRCStatus.CRC_OK,
    )
    info.ns_time.FromDatetime(UPLINK_TIME + timedelta(milliseconds=40))
    if gw_time is not None:
        info.gw_time.FromJsonString(gw_time)
    return info


def event(
    *,
    data: bytes | None = None,
    obj: dict[str, Any] | None = None,
    rx_info: list[gw.UplinkRxInfo] | None = None,
    time: datetime | None = UPLINK_TIME,
    dev_eui: str = DEV_EUI,
    f_cnt: int = 42,
    f_port: int = 85,
    dedup_id: str = DEDUP_ID,
) -> integration.UplinkEvent:
    """An uplink as ChirpStack builds it (chirpstack/src/uplink/data.rs), EM310-UDL by default."""
    payload, _, decoded = em310_vector()
    ev = integration.UplinkEvent(
        deduplication_id=dedup_id,
        device_info=integration.DeviceInfo(
            tenant_id="52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            tenant_name="Town",
            application_id=APPLICATION,
            application_name="bins",
            device_profile_id="f3b1d2c4-0a9e-4e6b-8c7d-5a4b3c2d1e0f",
            device_profile_name="Milesight EM310-UDL",
            device_name="bin-17",
            dev_eui=dev_eui,
            device_class_enabled=common.DeviceClass.CLASS_A,
            tags={"street": "Main St"},
        ),
        dev_addr="01fa3b2c",
        adr=True,
        dr=5,
        f_cnt=f_cnt,
        f_port=f_port,
        confirmed=False,
        data=payload if data is None else data,
        rx_info=[rx("0016c001ff10a235", rssi=-97, snr=6.5)] if rx_info is None else rx_info,
        tx_info=gw.UplinkTxInfo(
            frequency=868100000,
            modulation=gw.Modulation(
                lora=gw.LoraModulationInfo(
                    bandwidth=125000, spreading_factor=7, code_rate=gw.CodeRate.CR_4_5
                )
            ),
        ),
        region_config_id="eu868",
    )
    if time is not None:
        ev.time.FromDatetime(time)
    if obj is not None or data is None:
        ev.object.update(decoded if obj is None else obj)
    return ev


def chirpstack_dict(ev: Any, *, emit_defaults: bool = True) -> dict[str, Any]:
    """The JSON ChirpStack publishes for one of its `integration` events, as a dict.

    ChirpStack serialises its prost messages with pbjson (`serde_json::to_vec`, mqtt.rs and
    http.rs), camelCase names as protobuf's JSON mapping. Its build (api/rust/build.rs) turns on
    `emit_fields` for the `integration` package only: the event's and deviceInfo's zero values are
    written, those of the `gw` messages inside (rxInfo, txInfo) are not. `emit_defaults=False`
    gives an event with every zero value left out, as other protobuf-JSON writers produce.
    """
    doc: dict[str, Any] = json_format.MessageToDict(
        ev, always_print_fields_with_no_presence=emit_defaults
    )
    if "rxInfo" in doc:
        doc["rxInfo"] = [json_format.MessageToDict(item) for item in ev.rx_info]
    if "txInfo" in doc:
        doc["txInfo"] = json_format.MessageToDict(ev.tx_info)
    return doc


def chirpstack_json(ev: Any, *, emit_defaults: bool = True) -> bytes:
    return json.dumps(chirpstack_dict(ev, emit_defaults=emit_defaults)).encode()


def parse(body: bytes | dict[str, Any], **kwargs: Any) -> Uplink:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    kwargs.setdefault("received_at", NOW)
    kwargs.setdefault("limits", LIMITS)
    return parse_uplink(raw, **kwargs)


def rejection(body: bytes | dict[str, Any], **kwargs: Any) -> Rejection:
    with pytest.raises(Rejection) as info:
        parse(body, **kwargs)
    assert isinstance(info.value.reason, Reason)
    info.value.detail.encode()  # dead letters carry the detail: it must be encodable
    return info.value


def edited(**changes: Any) -> dict[str, Any]:
    """The default event with top-level fields replaced (None: removed)."""
    doc = chirpstack_dict(event())
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


# --------------------------------------------------------------------------------------------
# Golden events
# --------------------------------------------------------------------------------------------


def test_golden_event_with_bytes_and_decoded_object() -> None:
    payload, f_port, decoded = em310_vector()
    ev = event(
        rx_info=[
            rx("0016c001ff10a235", rssi=-97, snr=6.5),
            rx("0016c001ff10a236", rssi=-112, snr=-3.25),
        ]
    )
    assert parse(chirpstack_json(ev)) == Uplink(
        source="chirpstack",
        device_key=DEV_EUI,
        time=UPLINK_TIME,
        payload=payload,
        decoded={k: float(v) if isinstance(v, int) else v for k, v in decoded.items()},
        f_port=f_port,
        f_cnt=42,
        dedup_id=DEDUP_ID,
        application=APPLICATION,
        link=Link(rssi=-97.0, snr=6.5, gateways=2),
    )


def test_the_serialised_event_is_what_chirpstack_writes() -> None:
    """Guards `chirpstack_dict`: zero values present at the event level, absent inside rxInfo."""
    doc = chirpstack_dict(event(f_port=0, f_cnt=0, dedup_id="", rx_info=[rx("g", rssi=-90, snr=0)]))
    assert (doc["fPort"], doc["fCnt"], doc["deduplicationId"], doc["adr"]) == (0, 0, "", True)
    assert doc["deviceInfo"]["devEui"] == DEV_EUI
    assert doc["deviceInfo"]["deviceClassEnabled"] == "CLASS_A"
    assert "snr" not in doc["rxInfo"][0]
    assert doc["rxInfo"][0]["rssi"] == -90
    assert doc["time"] == "2026-12-07T10:00:00.123456Z"
    assert base64.b64decode(doc["data"]) == em310_vector()[0]


def test_event_without_a_codec_carries_bytes_only() -> None:
    ev = event()
    ev.ClearField("object")
    uplink = parse(chirpstack_json(ev))
    assert uplink.payload == em310_vector()[0]
    assert uplink.decoded is None


def test_event_with_an_object_and_no_bytes() -> None:
    uplink = parse(chirpstack_json(event(data=b"", obj={"distance": 1500})))
    assert uplink.payload is None
    assert uplink.decoded == {"distance": 1500.0}


def test_event_with_zero_values_left_out_parses_the_same() -> None:
    """Protobuf's JSON mapping lets a writer leave zero values out: they mean 0 and empty."""
    ev = event(f_port=0, f_cnt=0, dedup_id="")
    full, sparse = parse(chirpstack_json(ev)), parse(chirpstack_json(ev, emit_defaults=False))
    assert "fCnt" not in chirpstack_dict(ev, emit_defaults=False)
    assert full == sparse
    assert (sparse.f_port, sparse.f_cnt, sparse.dedup_id) == (0, 0, None)


def test_empty_deduplication_id_falls_back_to_counter_and_time() -> None:
    uplink = parse(chirpstack_json(event(dedup_id="")))
    assert uplink.dedup_id is None
    assert uplink.dedup_key == f"{DEV_EUI}|42|{UPLINK_TIME.isoformat()}"


def test_dedup_key_is_the_same_for_every_delivery() -> None:
    body = chirpstack_json(event())
    first = parse(body, received_at=NOW)
    again = parse(body, received_at=NOW + timedelta(seconds=30))  # redelivered after a reconnect
    assert first.dedup_key == again.dedup_key == f"{DEV_EUI}|{DEDUP_ID}"
    assert again.time == UPLINK_TIME


def test_dev_eui_is_lower_cased() -> None:
    assert parse(chirpstack_json(event(dev_eui="24E124136B502217"))).device_key == DEV_EUI


def test_unknown_fields_are_ignored() -> None:
    doc = chirpstack_dict(event())
    doc["futureField"] = {"x": [1, 2]}
    doc["deviceInfo"]["newThing"] = 1
    doc["rxInfo"][0]["fineTimeSinceGpsEpoch"] = "1.5s"
    assert parse(doc) == parse(chirpstack_json(event()))


def test_http_and_mqtt_bodies_are_the_same() -> None:
    body = chirpstack_json(event())
    assert parse(body, topic=TOPIC) == parse(body)


# --------------------------------------------------------------------------------------------
# Time and link
# --------------------------------------------------------------------------------------------


def test_time_falls_back_to_the_earliest_gateway_time() -> None:
    ev = event(
        time=None,
        rx_info=[
            rx("a", rssi=-90, snr=1, gw_time="2026-12-07T10:00:00.300Z"),
            rx("b", rssi=-95, snr=2, gw_time="2026-12-07T10:00:00.200Z"),
        ],
    )
    assert parse(chirpstack_json(ev)).time == datetime(2026, 12, 7, 10, 0, 0, 200000, tzinfo=UTC)


def test_time_falls_back_to_the_server_time_without_gateway_times() -> None:
    uplink = parse(chirpstack_json(event(time=None)))
    assert uplink.time == UPLINK_TIME + timedelta(milliseconds=40)


def test_time_falls_back_to_the_arrival_without_any_time() -> None:
    ev = event(time=None)
    for info in ev.rx_info:
        info.ClearField("ns_time")
    assert parse(chirpstack_json(ev)).time == NOW


def test_nanosecond_times_are_cut_to_microseconds() -> None:
    doc = edited(time="2026-12-07T10:00:00.123456789Z")
    assert parse(doc).time == UPLINK_TIME


@pytest.mark.parametrize(
    ("received_at", "ok"),
    [
        pytest.param(UPLINK_TIME + LIMITS.max_age, True, id="exactly-max-age"),
        pytest.param(UPLINK_TIME + LIMITS.max_age + timedelta(microseconds=1), False, id="old"),
        pytest.param(UPLINK_TIME - LIMITS.max_future, True, id="exactly-max-future"),
        pytest.param(UPLINK_TIME - LIMITS.max_future - timedelta(seconds=1), False, id="ahead"),
    ],
)
def test_time_window(received_at: datetime, ok: bool) -> None:
    body = chirpstack_json(event())
    if ok:
        assert parse(body, received_at=received_at).time == UPLINK_TIME
    else:
        expected = (
            Reason.TIMESTAMP_TOO_OLD if received_at > UPLINK_TIME else Reason.TIMESTAMP_IN_FUTURE
        )
        assert rejection(body, received_at=received_at).reason is expected


def test_link_takes_the_best_rssi_and_the_best_snr() -> None:
    ev = event(
        rx_info=[
            rx("a", rssi=-110, snr=9.5),
            rx("b", rssi=-80, snr=-2.0),
            rx("c", rssi=-120, snr=-7.25),
        ]
    )
    assert parse(chirpstack_json(ev)).link == Link(rssi=-80.0, snr=9.5, gateways=3)


def test_link_reads_an_omitted_snr_as_zero() -> None:
    ev = event(rx_info=[rx("a", rssi=-100, snr=0.0), rx("b", rssi=-105, snr=-4.0)])
    assert "snr" not in chirpstack_dict(ev)["rxInfo"][0]
    assert parse(chirpstack_json(ev)).link == Link(rssi=-100.0, snr=0.0, gateways=2)


def test_link_without_rssi_is_unknown() -> None:
    doc = edited(rxInfo=[{"gatewayId": "a", "snr": 3.5}])
    assert parse(doc).link == Link(rssi=None, snr=3.5, gateways=1)


@pytest.mark.parametrize(
    ("rx_info", "link"),
    [
        pytest.param([], Link(rssi=None, snr=None, gateways=0), id="empty"),
        pytest.param(None, Link(), id="absent"),
    ],
)
def test_link_without_receptions(rx_info: list[Any] | None, link: Link) -> None:
    assert parse(edited(rxInfo=rx_info)).link == link


# --------------------------------------------------------------------------------------------
# Topics and subscriptions
# --------------------------------------------------------------------------------------------


def test_topic_device() -> None:
    assert topic_device(TOPIC) == (APPLICATION, DEV_EUI)
    assert topic_device(TOPIC.replace(DEV_EUI, DEV_EUI.upper())) == (APPLICATION, DEV_EUI)


@pytest.mark.parametrize(
    "topic",
    [
        pytest.param(f"application/{APPLICATION}/device/{DEV_EUI}/event/join", id="join"),
        pytest.param(f"application/{APPLICATION}/device/{DEV_EUI}/state/status", id="state"),
        pytest.param(f"application/{APPLICATION}/device/{DEV_EUI}/event/up/x", id="too-long"),
        pytest.param(f"application//device/{DEV_EUI}/event/up", id="no-application"),
        pytest.param(f"application/{APPLICATION}/device/24e124136b50221/event/up", id="eui-15"),
        pytest.param(f"application/{APPLICATION}/device/24e124136b50221g/event/up", id="eui-g"),
        pytest.param(f"application/{APPLICATION}/device/+/event/up", id="wildcard"),
        pytest.param(f"/application/{APPLICATION}/device/{DEV_EUI}/event/up", id="leading-/"),
        pytest.param("sensors/waste/bin-17", id="townpulse"),
        pytest.param("", id="empty"),
    ],
)
def test_topic_device_refuses(topic: str) -> None:
    assert topic_device(topic) is None


def test_subscription() -> None:
    assert (
        subscription(None) == chirpstack.DEFAULT_SUBSCRIPTION == "application/+/device/+/event/up"
    )
    assert subscription(APPLICATION) == f"application/{APPLICATION}/device/+/event/up"
    assert topic_device(subscription(APPLICATION).replace("+", DEV_EUI)) == (APPLICATION, DEV_EUI)


@pytest.mark.parametrize("application", ["", "a/b", "+", "#", "app+"])
def test_subscription_refuses_what_is_not_an_application_id(application: str) -> None:
    with pytest.raises(ValueError, match="application id"):
        subscription(application)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        pytest.param(
            f"application/{APPLICATION}/device/0000000000000001/event/up",
            Reason.BAD_EVENT,
            id="another-device",
        ),
        pytest.param(
            f"application/00000000-0000-0000-0000-000000000000/device/{DEV_EUI}/event/up",
            Reason.BAD_EVENT,
            id="another-application",
        ),
        pytest.param(
            f"application/{APPLICATION}/device/{DEV_EUI}/event/join",
            Reason.BAD_EVENT,
            id="join-topic",
        ),
        pytest.param("some/where/else", Reason.BAD_TOPIC, id="not-chirpstack"),
    ],
)
def test_topic_must_match_the_event(topic: str, reason: Reason) -> None:
    assert rejection(chirpstack_json(event()), topic=topic).reason is reason


# --------------------------------------------------------------------------------------------
# Bad input: each a rejection with its reason
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(integration.JoinEvent, id="join"),
        pytest.param(integration.StatusEvent, id="status"),
        pytest.param(integration.AckEvent, id="ack"),
        pytest.param(integration.TxAckEvent, id="txack"),
        pytest.param(integration.LocationEvent, id="location"),
    ],
)
def test_other_events_are_not_uplinks(other: Any) -> None:
    ev = other(
        device_info=integration.DeviceInfo(application_id=APPLICATION, dev_eui=DEV_EUI),
    )
    ev.time.FromDatetime(UPLINK_TIME)
    rej = rejection(chirpstack_json(ev))
    assert rej.reason is Reason.BAD_EVENT


def test_a_join_event_says_it_is_not_an_uplink() -> None:
    ev = integration.JoinEvent(
        deduplication_id=DEDUP_ID,
        device_info=integration.DeviceInfo(application_id=APPLICATION, dev_eui=DEV_EUI),
        dev_addr="01fa3b2c",
    )
    assert "not an uplink" in rejection(chirpstack_json(ev)).detail


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"deviceInfo": None}, "deviceInfo", id="no-device-info"),
        pytest.param({"deviceInfo": "x"}, "deviceInfo", id="device-info-string"),
        pytest.param({"deviceInfo": [1]}, "deviceInfo", id="device-info-list"),
        pytest.param({"deviceInfo": {"applicationId": APPLICATION}}, "devEui", id="no-dev-eui"),
        pytest.param({"fPort": "85"}, "fPort", id="f-port-string"),
        pytest.param({"fPort": 85.5}, "fPort", id="f-port-float"),
        pytest.param({"fPort": True}, "fPort", id="f-port-bool"),
        pytest.param({"fPort": -1}, "fPort", id="f-port-negative"),
        pytest.param({"fPort": 256}, "fPort", id="f-port-256"),
        pytest.param({"fCnt": "42"}, "fCnt", id="f-cnt-string"),
        pytest.param({"fCnt": 2**32}, "fCnt", id="f-cnt-over-u32"),
        pytest.param({"fCnt": -1}, "fCnt", id="f-cnt-negative"),
        pytest.param({"fCnt": [42]}, "fCnt", id="f-cnt-list"),
        pytest.param({"data": 12}, "data", id="data-number"),
        pytest.param({"data": ["AQ=="]}, "data", id="data-list"),
        pytest.param({"object": [1, 2]}, "object", id="object-list"),
        pytest.param({"object": "distance=1"}, "object", id="object-string"),
        pytest.param({"object": 5}, "object", id="object-number"),
        pytest.param({"object": {"a": "x\u0000y"}}, "object", id="object-nul"),
        pytest.param({"object": {"a": "\ud800"}}, "object", id="object-lone-surrogate"),
        pytest.param({"object": {"\ud800": 1}}, "object", id="object-key-surrogate"),
        pytest.param({"time": 1765101600}, "time", id="time-number"),
        pytest.param({"time": True}, "time", id="time-bool"),
        pytest.param({"rxInfo": {"rssi": -90}}, "rxInfo", id="rx-info-object"),
        pytest.param({"rxInfo": [1]}, "rxInfo[0]", id="rx-info-item-number"),
        pytest.param({"rxInfo": [{"rssi": "-90"}]}, "rxInfo[0].rssi", id="rssi-string"),
        pytest.param({"rxInfo": [{"rssi": -90, "snr": True}]}, "rxInfo[0].snr", id="snr-bool"),
        pytest.param({"rxInfo": [{"gatewayId": 7}]}, "rxInfo[0].gatewayId", id="gateway-number"),
        pytest.param({"rxInfo": [{"gwTime": 5}]}, "rxInfo[0].gwTime", id="gw-time-number"),
        pytest.param({"deduplicationId": 17}, "deduplicationId", id="dedup-number"),
        pytest.param({"deduplicationId": "a b"}, "deduplicationId", id="dedup-space"),
        pytest.param({"deduplicationId": "x" * 129}, "deduplicationId", id="dedup-long"),
        pytest.param({"deduplicationId": "\u0000"}, "deduplicationId", id="dedup-nul"),
    ],
)
def test_wrong_types_name_the_field(changes: dict[str, Any], field: str) -> None:
    rej = rejection(edited(**changes))
    assert rej.reason is Reason.BAD_EVENT
    assert field in rej.detail


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("24e124136b50221", id="15-digits"),
        pytest.param("24e124136b5022170", id="17-digits"),
        pytest.param("24e124136b50221g", id="not-hex"),
        pytest.param("0x24e124136b5022", id="0x-prefix"),
        pytest.param("24-e1-24-13-6b-50", id="dashes"),
        pytest.param("24e124136b502217\n", id="trailing-newline"),
        pytest.param(24124136502217, id="number"),
        pytest.param(["24e124136b502217"], id="list"),
    ],
)
def test_dev_eui_must_be_16_hex_digits(value: Any) -> None:
    doc = chirpstack_dict(event())
    if value is None:
        del doc["deviceInfo"]["devEui"]
    else:
        doc["deviceInfo"]["devEui"] = value
    rej = rejection(doc)
    assert rej.reason is Reason.BAD_EVENT
    assert "devEui" in rej.detail


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("not base64!", id="punctuation"),
        pytest.param("AXVc A4JE", id="space"),
        pytest.param("AXVc\nA4JE", id="newline"),
        pytest.param("A", id="one-char"),
        pytest.param("AXVcA", id="five-chars"),
        pytest.param("AQ=A", id="padding-inside"),
        pytest.param("AX+c-A4J", id="both-alphabets"),
        pytest.param("AXVcé4JE", id="non-ascii"),
    ],
)
def test_data_that_is_not_base64(data: str) -> None:
    rej = rejection(edited(data=data))
    assert rej.reason is Reason.NOT_BASE64
    assert "data" in rej.detail


@pytest.mark.parametrize(
    ("data", "payload"),
    [
        pytest.param("AXVcA4JECAQAAQ==", "01755c03824408040001", id="standard"),
        pytest.param("AXVcA4JECAQAAQ", "01755c03824408040001", id="unpadded"),
        pytest.param("_-8=", "ffef", id="url-safe"),
        pytest.param("/+8=", "ffef", id="standard-high-bytes"),
    ],
)
def test_base64_forms_protobuf_json_accepts(data: str, payload: str) -> None:
    assert parse(edited(data=data)).payload == bytes.fromhex(payload)


def test_no_data_and_no_object() -> None:
    ev = event(data=b"")
    ev.ClearField("object")
    rej = rejection(chirpstack_json(ev))
    assert rej.reason is Reason.BAD_EVENT
    assert "neither data nor object" in rej.detail


@pytest.mark.parametrize(
    ("time", "reason"),
    [
        pytest.param("yesterday", Reason.INVALID_TIMESTAMP, id="words"),
        pytest.param("2026-12-07T10:00:00", Reason.INVALID_TIMESTAMP, id="no-offset"),
        pytest.param("2026-13-07T10:00:00Z", Reason.INVALID_TIMESTAMP, id="month-13"),
        pytest.param("2025-12-07T10:00:00Z", Reason.TIMESTAMP_TOO_OLD, id="a-year-old"),
        pytest.param("2026-12-07T11:00:00Z", Reason.TIMESTAMP_IN_FUTURE, id="an-hour-ahead"),
    ],
)
def test_bad_times(time: str, reason: Reason) -> None:
    assert rejection(edited(time=time)).reason is reason


def test_bad_gateway_time_when_the_event_has_none() -> None:
    doc = edited(time=None, rxInfo=[{"gatewayId": "a", "rssi": -90, "gwTime": "noon"}])
    rej = rejection(doc)
    assert rej.reason is Reason.INVALID_TIMESTAMP
    assert "rxInfo[0].gwTime" in rej.detail


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"", Reason.INVALID_JSON, id="empty"),
        pytest.param(b"{", Reason.INVALID_JSON, id="truncated"),
        pytest.param(b"deviceInfo=1", Reason.INVALID_JSON, id="form-encoded"),
        pytest.param(event().SerializeToString(), Reason.NOT_UTF8, id="protobuf-marshaler"),
        pytest.param(b"\xff{}", Reason.NOT_UTF8, id="not-utf8"),
        pytest.param(b"[]", Reason.BAD_EVENT, id="array"),
        pytest.param(b'"up"', Reason.BAD_EVENT, id="string"),
        pytest.param(b"null", Reason.BAD_EVENT, id="null"),
        pytest.param(b"[" * 50_000 + b"]" * 50_000, Reason.INVALID_JSON, id="nested-too-deeply"),
    ],
)
def test_malformed_bodies(body: bytes, reason: Reason) -> None:
    assert rejection(body, limits=Limits(max_bytes=200_000)).reason is reason


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param("NaN", id="nan"),
        pytest.param("Infinity", id="infinity"),
        pytest.param("-Infinity", id="minus-infinity"),
        pytest.param("1e400", id="float-overflow"),
        pytest.param("1" + "0" * 5000, id="int-5000-digits"),
    ],
)
@pytest.mark.parametrize("where", ["object", "rssi", "fCnt"])
def test_non_finite_numbers(literal: str, where: str) -> None:
    doc = chirpstack_dict(event())
    marker = "__MARK__"
    if where == "object":
        doc["object"]["distance"] = marker
    elif where == "rssi":
        doc["rxInfo"][0]["rssi"] = marker
    else:
        doc["fCnt"] = marker
    body = json.dumps(doc).replace(f'"{marker}"', literal).encode()
    assert rejection(body).reason is Reason.NON_FINITE_NUMBER


def nested(levels: int) -> dict[str, Any]:
    """An object of `levels` objects, one inside the other."""
    doc: dict[str, Any] = {"v": 1}
    for _ in range(levels - 1):
        doc = {"a": doc}
    return doc


def test_object_nesting_limit() -> None:
    assert parse(edited(object=nested(MAX_DEPTH))).decoded == nested(MAX_DEPTH)
    rej = rejection(edited(object=nested(MAX_DEPTH + 1)))
    assert rej.reason is Reason.BAD_EVENT
    assert "nested" in rej.detail


@pytest.mark.parametrize(("pad", "ok"), [(0, True), (1, False)], ids=["at-limit", "one-over"])
def test_size_limit(pad: int, ok: bool) -> None:
    body = chirpstack_json(event())
    limits = Limits(max_bytes=len(body) + 10)
    padded = body + b" " * (10 + pad)
    if ok:
        assert parse(padded, limits=limits).device_key == DEV_EUI
    else:
        rej = rejection(padded, limits=limits)
        assert rej.reason is Reason.PAYLOAD_TOO_LARGE
        assert str(len(padded)) in rej.detail


def test_size_is_checked_before_decoding() -> None:
    assert rejection(b"\xff" * (LIMITS.max_bytes + 1)).reason is Reason.PAYLOAD_TOO_LARGE


# --------------------------------------------------------------------------------------------
# Property-style: no input crashes the parser
# --------------------------------------------------------------------------------------------

ATOMS: list[Any] = [
    None, True, 0, -1, 2**32, 1.5, "", "x", "AQ==", "!!", DEV_EUI, "2026-12-07T10:00:00Z", [], {},
    "\ud800", 10**400,
]  # fmt: skip


def _mutated_doc(rng: random.Random) -> dict[str, Any]:
    doc = chirpstack_dict(event())
    targets = [doc, doc["deviceInfo"], doc["rxInfo"][0], doc["object"]]
    for _ in range(rng.randint(1, 3)):
        target = rng.choice(targets)
        key = rng.choice([*target, "extra"])
        if rng.random() < 0.2:
            target.pop(key, None)
        else:
            target[key] = rng.choice(ATOMS)
    return doc


@pytest.mark.parametrize("seed", range(5), ids=lambda s: f"seed-{s}")
def test_mutated_events_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    outcomes: set[str] = set()
    for _ in range(200):
        body = json.dumps(_mutated_doc(rng)).encode("utf-8", "surrogatepass")
        if rng.random() < 0.3:  # and some byte-level damage
            pos = rng.randrange(len(body))
            body = body[:pos] + bytes([rng.randrange(256)]) + body[pos + 1 :]
        try:
            uplink = parse(body)
        except Rejection as rej:
            assert isinstance(rej.reason, Reason)
            rej.detail.encode()
            outcomes.add(rej.reason)
            continue
        outcomes.add("ok")
        assert len(uplink.device_key) == 16
        assert uplink.payload or uplink.decoded is not None
        assert NOW - LIMITS.max_age <= uplink.time <= NOW + LIMITS.max_future
        json.dumps(uplink.decoded).encode()  # storable
    assert "ok" in outcomes
    assert len(outcomes) >= 3
