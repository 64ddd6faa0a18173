"""Unit tests for `ingest.tts`: The Things Stack v3 uplink messages, over MQTT or from webhooks.

The messages follow The Things Stack's "Data formats" documentation: protobuf field names, and
every empty value (`""`, `0`, `false`) left out, which `tts_message` reproduces. The payload is
the Milesight EM310-UDL test vector, as in the ChirpStack tests.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.gateway.ingest import tts
from services.gateway.ingest.common import MAX_DEPTH
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from services.gateway.ingest.tts import parse_uplink, subscription, topic_device
from services.gateway.ingest.uplink import Link, Uplink

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 7, 10, 0, 5, tzinfo=UTC)
NS_TIME = datetime(2026, 12, 7, 10, 0, 0, 104000, tzinfo=UTC)
AS_TIME = datetime(2026, 12, 7, 10, 0, 0, 312345, tzinfo=UTC)
LIMITS = Limits()
PAYLOAD = bytes([0x01, 0x75, 0x5C, 0x03, 0x82, 0x44, 0x08, 0x04, 0x00, 0x01])
DECODED = {"battery": 92, "distance": 2116, "tilt": "tilt"}
DEV_EUI = "24E124136B502217"
DEVICE_ID = "eui-24e124136b502217"
APP = "town-bins"
TOPIC = f"v3/{APP}@ttn/devices/{DEVICE_ID}/up"


def rfc3339(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def omit_empty(value: Any) -> Any:
    """What The Things Stack does to a message's own fields: `""`, `0`, `false` are left out."""
    if isinstance(value, dict):
        return {k: omit_empty(v) for k, v in value.items() if v not in ("", 0, False, None)}
    if isinstance(value, list):
        return [omit_empty(v) for v in value]
    return value


def reception(gateway: str, *, rssi: float, snr: float) -> dict[str, Any]:
    return {
        "gateway_ids": {"gateway_id": gateway, "eui": "AA555A0000000101"},
        "time": rfc3339(NS_TIME - timedelta(milliseconds=20)),
        "timestamp": 3895211423,
        "rssi": rssi,
        "channel_rssi": rssi,
        "snr": snr,
        "location": {"latitude": 52.1, "longitude": 4.3, "source": "SOURCE_REGISTRY"},
        "uplink_token": "ChsKGQoNZXVpLWFhNTU1YTAwMDAwMDAxMDESCKpVWgAAAAEBEOe5s4AO",
        "channel_index": 2,
        "received_at": rfc3339(NS_TIME - timedelta(milliseconds=5)),
    }


def tts_message(
    *,
    frm_payload: bytes = PAYLOAD,
    decoded: dict[str, Any] | None = DECODED,
    f_port: int = 85,
    f_cnt: int = 42,
    dev_eui: str | None = DEV_EUI,
    rx_metadata: list[dict[str, Any]] | None = None,
    tenant: str | None = "ttn",
) -> dict[str, Any]:
    """An `ApplicationUp` with an `uplink_message`, as The Things Stack sends it."""
    message: dict[str, Any] = omit_empty(
        {
            "end_device_ids": {
                "device_id": DEVICE_ID,
                "application_ids": {"application_id": APP},
                "dev_eui": dev_eui,
                "join_eui": "24E124C0002A0001",
                "dev_addr": "260BABCD",
            },
            "correlation_ids": [
                "as:up:01HX6YGQ7E0V83YRZ7K4S5J4ZN",
                "gs:uplink:01HX6YGQ7AS3VTM5W5W36YV1F1",
            ],
            "received_at": rfc3339(AS_TIME),
            "uplink_message": {
                "session_key_id": "AWNbm/4zfqx0jZ5q1NlBmw==",
                "f_port": f_port,
                "f_cnt": f_cnt,
                "frm_payload": base64.b64encode(frm_payload).decode(),
                "rx_metadata": (
                    [reception("gw-1", rssi=-97, snr=6.5)] if rx_metadata is None else rx_metadata
                ),
                "settings": {
                    "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}},
                    "coding_rate": "4/5",
                    "frequency": "868100000",
                    "timestamp": 3895211423,
                },
                "received_at": rfc3339(NS_TIME),
                "consumed_airtime": "0.061696s",
                "network_ids": {"net_id": "000013", "tenant_id": tenant, "cluster_id": "eu1"},
            },
        }
    )
    if decoded is not None:  # a Struct: its values are kept as they are, zeros included
        message["uplink_message"]["decoded_payload"] = decoded
    return message


def parse(body: bytes | dict[str, Any], **kwargs: Any) -> Uplink:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    kwargs.setdefault("received_at", NOW)
    kwargs.setdefault("limits", LIMITS)
    return parse_uplink(raw, **kwargs)


def rejection(body: bytes | dict[str, Any], **kwargs: Any) -> Rejection:
    with pytest.raises(Rejection) as info:
        parse(body, **kwargs)
    assert isinstance(info.value.reason, Reason)
    info.value.detail.encode()
    return info.value


# --------------------------------------------------------------------------------------------
# Accepted
# --------------------------------------------------------------------------------------------


def test_golden_message() -> None:
    message = tts_message(
        rx_metadata=[reception("gw-1", rssi=-97, snr=6.5), reception("gw-2", rssi=-112, snr=8.25)]
    )
    assert parse(message, topic=TOPIC) == Uplink(
        source="tts",
        device_key="24e124136b502217",
        time=NS_TIME,
        payload=PAYLOAD,
        decoded=DECODED,
        f_port=85,
        f_cnt=42,
        dedup_id=None,
        application=f"{APP}@ttn",
        link=Link(rssi=-97.0, snr=8.25, gateways=2),
    )


def test_webhook_and_mqtt_give_the_same_uplink() -> None:
    """The webhook has no topic; the tenant comes from network_ids, the same as the topic's."""
    body = json.dumps(tts_message()).encode()
    assert parse(body) == parse(body, topic=TOPIC)


def test_without_a_tenant_the_application_is_the_bare_id() -> None:
    assert parse(tts_message(tenant=None)).application == APP
    topic = f"v3/{APP}/devices/{DEVICE_ID}/up"  # The Things Stack Open Source: no tenants
    assert parse(tts_message(tenant=None), topic=topic).application == APP


def test_the_topic_names_the_tenant() -> None:
    topic = f"v3/{APP}@acme/devices/{DEVICE_ID}/up"
    assert parse(tts_message(tenant="ttn"), topic=topic).application == f"{APP}@acme"


def test_zero_values_are_left_out_and_mean_zero() -> None:
    message = tts_message(f_port=0, f_cnt=0)
    assert "f_cnt" not in message["uplink_message"]
    uplink = parse(message)
    assert (uplink.f_port, uplink.f_cnt) == (0, 0)


def test_decoded_payload_only() -> None:
    uplink = parse(tts_message(frm_payload=b"", decoded={"distance": 0}))
    assert (uplink.payload, uplink.decoded) == (None, {"distance": 0})


def test_bytes_only() -> None:
    uplink = parse(tts_message(decoded=None))
    assert (uplink.payload, uplink.decoded) == (PAYLOAD, None)


def test_a_device_without_dev_eui_is_named_by_its_device_id() -> None:
    assert parse(tts_message(dev_eui=None)).device_key == DEVICE_ID


def test_time_is_the_network_servers_and_the_same_in_every_delivery() -> None:
    body = json.dumps(tts_message()).encode()
    first = parse(body)
    retried = parse(body, received_at=NOW + timedelta(minutes=2))  # a webhook retry
    assert first.time == retried.time == NS_TIME
    assert first.dedup_key == retried.dedup_key == f"24e124136b502217|42|{NS_TIME.isoformat()}"


def test_time_falls_back_to_the_application_servers_then_the_arrival() -> None:
    message = tts_message()
    del message["uplink_message"]["received_at"]
    assert parse(message).time == AS_TIME
    del message["received_at"]
    assert parse(message).time == NOW


def test_nanosecond_times() -> None:
    message = tts_message()
    message["uplink_message"]["received_at"] = "2026-12-07T10:00:00.104000999Z"
    assert parse(message).time == NS_TIME


def test_link_uses_channel_rssi_when_rssi_is_missing_and_zero_snr_when_omitted() -> None:
    first, second = reception("a", rssi=-101, snr=0), reception("b", rssi=-108, snr=-3.5)
    first = omit_empty(first)
    del first["rssi"]
    message = tts_message(rx_metadata=[first, second])
    assert parse(message).link == Link(rssi=-101.0, snr=0.0, gateways=2)


def test_link_without_rx_metadata() -> None:
    message = tts_message()
    del message["uplink_message"]["rx_metadata"]
    assert parse(message).link == Link()


def test_unknown_fields_are_ignored() -> None:
    message = tts_message()
    message["simulated"] = True
    message["uplink_message"]["last_battery_percentage"] = {"f_cnt": 40, "value": 92}
    message["end_device_ids"]["attributes"] = {"street": "Main St"}
    assert parse(message) == parse(tts_message())


# --------------------------------------------------------------------------------------------
# Topics and subscriptions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        pytest.param(TOPIC, (f"{APP}@ttn", DEVICE_ID), id="tenant"),
        pytest.param(f"v3/{APP}/devices/{DEVICE_ID}/up", (APP, DEVICE_ID), id="no-tenant"),
        pytest.param(f"v3/{APP}@ttn/devices/{DEVICE_ID}/join", None, id="join"),
        pytest.param(f"v3/{APP}@ttn/devices/{DEVICE_ID}/down/sent", None, id="down-sent"),
        pytest.param(f"v3/{APP}@ttn/devices//up", None, id="no-device"),
        pytest.param(f"v3//devices/{DEVICE_ID}/up", None, id="no-application"),
        pytest.param(f"v2/{APP}/devices/{DEVICE_ID}/up", None, id="v2"),
        pytest.param("application/x/device/0102030405060708/event/up", None, id="chirpstack"),
    ],
)
def test_topic_device(topic: str, parsed: tuple[str, str] | None) -> None:
    assert topic_device(topic) == parsed


def test_subscription() -> None:
    assert subscription(None) == tts.DEFAULT_SUBSCRIPTION == "v3/+/devices/+/up"
    assert subscription(f"{APP}@ttn") == f"v3/{APP}@ttn/devices/+/up"
    assert topic_device(subscription(f"{APP}@ttn").replace("+", DEVICE_ID)) == (
        f"{APP}@ttn",
        DEVICE_ID,
    )


@pytest.mark.parametrize("application", ["", "a/b", "+", "#"])
def test_subscription_refuses_what_is_not_an_application_id(application: str) -> None:
    with pytest.raises(ValueError, match="application id"):
        subscription(application)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        pytest.param(f"v3/other@ttn/devices/{DEVICE_ID}/up", Reason.BAD_EVENT, id="other-app"),
        pytest.param(f"v3/{APP}@ttn/devices/bin-18/up", Reason.BAD_EVENT, id="other-device"),
        pytest.param(f"v3/{APP}@ttn/devices/{DEVICE_ID}/join", Reason.BAD_TOPIC, id="join"),
        pytest.param("sensors/waste/bin-17", Reason.BAD_TOPIC, id="townpulse"),
    ],
)
def test_topic_must_match_the_message(topic: str, reason: Reason) -> None:
    assert rejection(tts_message(), topic=topic).reason is reason


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"join_accept": {"session_key_id": "AXBSH1Pk6Z0G166RlH16CQ=="}}, id="join"),
        pytest.param({"downlink_ack": {"f_port": 1, "frm_payload": "AQ=="}}, id="downlink-ack"),
        pytest.param({"downlink_sent": {"f_port": 1}}, id="downlink-sent"),
        pytest.param({"downlink_failed": {"error": {}}}, id="downlink-failed"),
        pytest.param({"location_solved": {"location": {}}}, id="location"),
        pytest.param({}, id="nothing"),
    ],
)
def test_other_messages_are_not_uplinks(other: dict[str, Any]) -> None:
    message = tts_message()
    del message["uplink_message"]
    message.update(other)
    rej = rejection(message)
    assert rej.reason is Reason.BAD_EVENT
    assert "not an uplink" in rej.detail
    if other:
        assert next(iter(other)) in rej.detail


def _set(message: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target = message
    for key in parents:
        target = target[key]
    if value is None:
        target.pop(last, None)
    else:
        target[last] = value


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("uplink_message", "up", id="uplink-message-string"),
        pytest.param("end_device_ids", None, id="no-end-device-ids"),
        pytest.param("end_device_ids", [DEVICE_ID], id="end-device-ids-list"),
        pytest.param("end_device_ids.device_id", None, id="no-device-id"),
        pytest.param("end_device_ids.device_id", 17, id="device-id-number"),
        pytest.param("end_device_ids.application_ids", None, id="no-application-ids"),
        pytest.param("end_device_ids.application_ids", APP, id="application-ids-string"),
        pytest.param("end_device_ids.application_ids.application_id", 5, id="app-id-number"),
        pytest.param("end_device_ids.application_ids.application_id", "a b", id="app-id-space"),
        pytest.param("end_device_ids.dev_eui", 12, id="dev-eui-number"),
        pytest.param("end_device_ids.dev_eui", "24E124136B50221", id="dev-eui-15"),
        pytest.param("end_device_ids.dev_eui", "24E124136B50221Z", id="dev-eui-not-hex"),
        pytest.param("uplink_message.f_port", "85", id="f-port-string"),
        pytest.param("uplink_message.f_port", 300, id="f-port-300"),
        pytest.param("uplink_message.f_cnt", 4.5, id="f-cnt-float"),
        pytest.param("uplink_message.f_cnt", -3, id="f-cnt-negative"),
        pytest.param("uplink_message.frm_payload", 1, id="frm-payload-number"),
        pytest.param("uplink_message.decoded_payload", [1], id="decoded-list"),
        pytest.param("uplink_message.decoded_payload", "x", id="decoded-string"),
        pytest.param("uplink_message.decoded_payload", {"x": "\u0000"}, id="decoded-nul"),
        pytest.param("uplink_message.rx_metadata", {}, id="rx-metadata-object"),
        pytest.param("uplink_message.rx_metadata", ["gw"], id="rx-metadata-item"),
        pytest.param("uplink_message.received_at", 1765101600, id="received-at-number"),
        pytest.param("uplink_message.network_ids", "ttn", id="network-ids-string"),
        pytest.param("uplink_message.network_ids.tenant_id", 7, id="tenant-number"),
    ],
)
def test_malformed_fields(path: str, value: Any) -> None:
    message = tts_message()
    _set(message, path, value)
    rej = rejection(message)
    assert rej.reason is Reason.BAD_EVENT
    assert path in rej.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("rssi", "-90", id="rssi-string"),
        pytest.param("channel_rssi", True, id="channel-rssi-bool"),
        pytest.param("snr", [1], id="snr-list"),
    ],
)
def test_malformed_rx_metadata(field: str, value: Any) -> None:
    item = reception("a", rssi=-90, snr=1)
    item[field] = value
    rej = rejection(tts_message(rx_metadata=[item]))
    assert rej.reason is Reason.BAD_EVENT
    assert f"rx_metadata[0].{field}" in rej.detail


@pytest.mark.parametrize("data", ["not base64!", "AQ=A", "A", "AX+c-A4J"])
def test_frm_payload_that_is_not_base64(data: str) -> None:
    message = tts_message()
    message["uplink_message"]["frm_payload"] = data
    rej = rejection(message)
    assert rej.reason is Reason.NOT_BASE64
    assert "frm_payload" in rej.detail


def test_no_payload_at_all() -> None:
    rej = rejection(tts_message(frm_payload=b"", decoded=None))
    assert rej.reason is Reason.BAD_EVENT
    assert "neither" in rej.detail


def test_decoded_payload_nested_too_deeply() -> None:
    deep: dict[str, Any] = {"v": 1}
    for _ in range(MAX_DEPTH):
        deep = {"a": deep}
    assert rejection(tts_message(decoded=deep)).reason is Reason.BAD_EVENT


@pytest.mark.parametrize(
    ("received_at", "reason"),
    [
        pytest.param("2026-12-07T10:00:00", Reason.INVALID_TIMESTAMP, id="no-offset"),
        pytest.param("soon", Reason.INVALID_TIMESTAMP, id="words"),
        pytest.param("2026-11-01T10:00:00Z", Reason.TIMESTAMP_TOO_OLD, id="a-month-old"),
        pytest.param("2026-12-07T10:30:00Z", Reason.TIMESTAMP_IN_FUTURE, id="half-an-hour-ahead"),
    ],
)
def test_bad_times(received_at: str, reason: Reason) -> None:
    message = tts_message()
    message["uplink_message"]["received_at"] = received_at
    assert rejection(message).reason is reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"", Reason.INVALID_JSON, id="empty"),
        pytest.param(b'{"uplink_message": ', Reason.INVALID_JSON, id="truncated"),
        pytest.param(b"\xc3\x28", Reason.NOT_UTF8, id="not-utf8"),
        pytest.param(b"[]", Reason.BAD_EVENT, id="array"),
        pytest.param(b"42", Reason.BAD_EVENT, id="number"),
        pytest.param(
            json.dumps(tts_message()).replace("2116", "NaN").encode(),
            Reason.NON_FINITE_NUMBER,
            id="nan-in-decoded",
        ),
        pytest.param(
            json.dumps(tts_message()).replace("2116", "1e400").encode(),
            Reason.NON_FINITE_NUMBER,
            id="overflow-in-decoded",
        ),
        pytest.param(
            json.dumps(tts_message()).replace("-97", "-Infinity").encode(),
            Reason.NON_FINITE_NUMBER,
            id="infinite-rssi",
        ),
    ],
)
def test_malformed_bodies(body: bytes, reason: Reason) -> None:
    assert rejection(body).reason is reason


def test_size_limit() -> None:
    body = json.dumps(tts_message()).encode()
    assert parse(body, limits=Limits(max_bytes=len(body))).f_cnt == 42
    rej = rejection(body, limits=Limits(max_bytes=len(body) - 1))
    assert rej.reason is Reason.PAYLOAD_TOO_LARGE


# --------------------------------------------------------------------------------------------
# Property-style: no input crashes the parser
# --------------------------------------------------------------------------------------------

ATOMS: list[Any] = [
    None, True, 0, -1, 2**32, 1.5, "", "x", "AQ==", "!!", DEV_EUI, "2026-12-07T10:00:00Z", [], {},
    10**400,
]  # fmt: skip


@pytest.mark.parametrize("seed", range(5), ids=lambda s: f"seed-{s}")
def test_mutated_messages_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    outcomes: set[str] = set()
    for _ in range(200):
        message = tts_message()
        up = message["uplink_message"]
        targets = [message, message["end_device_ids"], up, up["rx_metadata"][0], up["network_ids"]]
        for _ in range(rng.randint(1, 3)):
            target = rng.choice(targets)
            key = rng.choice([*target, "extra"])
            if rng.random() < 0.2:
                target.pop(key, None)
            else:
                target[key] = rng.choice(ATOMS)
        try:
            uplink = parse(message)
        except Rejection as rej:
            assert isinstance(rej.reason, Reason)
            outcomes.add(rej.reason)
            continue
        outcomes.add("ok")
        assert uplink.payload or uplink.decoded is not None
        assert NOW - LIMITS.max_age <= uplink.time <= NOW + LIMITS.max_future
    assert "ok" in outcomes
    assert len(outcomes) >= 3
