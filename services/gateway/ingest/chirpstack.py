"""ChirpStack v4 uplink events (`integration.UplinkEvent`), JSON marshaler, over MQTT or HTTP.

ChirpStack's MQTT integration publishes on `application/{application_id}/device/{dev_eui}/event/up`
and its HTTP integration POSTs to `...?event=up`; both send the same body, `serde_json` of the
prost message (pbjson: protobuf's JSON mapping, camelCase names, bytes as base64, timestamps as
RFC 3339). ChirpStack builds the `integration` messages with pbjson's `emit_fields`, so the
event's own scalars are always present (`"fPort": 0`, `"data": ""`, `"rxInfo": []`), while the
`gw` messages inside (`rxInfo[]`, `txInfo`) omit their zero values (api/rust/build.rs). A field
left out is read as its protobuf default, as protobuf's JSON mapping requires, so events of
releases that omitted defaults parse too.

    {"deduplicationId": "<uuid>", "time": "2026-12-07T10:00:00.123456789+00:00",
     "deviceInfo": {"tenantId": "...", "applicationId": "<uuid>", "devEui": "0102030405060708",
                    "deviceName": "...", "deviceProfileName": "...", ...},
     "devAddr": "01020304", "adr": true, "dr": 5, "fCnt": 42, "fPort": 85, "confirmed": false,
     "data": "AXVcA4JECAQAAQ==", "object": {"distance": 2116, ...},
     "rxInfo": [{"gatewayId": "...", "rssi": -90, "snr": 7.5, "gwTime": "...", "nsTime": "..."}],
     "txInfo": {"frequency": 868100000, "modulation": {...}}, "regionConfigId": "eu868"}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from services.gateway.ingest.common import (
    EUI_RE,
    check_tree,
    check_window,
    decode_base64,
    decode_object,
    dev_eui,
    get_int,
    get_list,
    get_number,
    get_object,
    get_str,
    get_time,
    server_id,
)
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from services.gateway.ingest.uplink import Link, Uplink

SOURCE = "chirpstack"
# ChirpStack's default `event_topic` template with the event fixed to `up`.
DEFAULT_SUBSCRIPTION = "application/+/device/+/event/up"
U32_MAX = 2**32 - 1
F_PORT_MAX = 255
# The event types ChirpStack publishes next to `up`; named in the rejection when one comes here.
_OTHER_EVENTS = ("join", "ack", "txack", "log", "status", "location", "integration")


def subscription(application: str | None) -> str:
    """The topic filter for one application's uplinks, or every application's.

    >>> subscription(None)
    'application/+/device/+/event/up'
    >>> subscription("2c8b5a4e-0f3a-4b1e-9d5c-1a2b3c4d5e6f")
    'application/2c8b5a4e-0f3a-4b1e-9d5c-1a2b3c4d5e6f/device/+/event/up'
    """
    if application is None:
        return DEFAULT_SUBSCRIPTION
    if not application or any(c in application for c in "/+#"):
        raise ValueError(f"not a ChirpStack application id: {application!r}")
    return f"application/{application}/device/+/event/up"


def topic_device(topic: str) -> tuple[str, str] | None:
    """(application id, DevEUI in lower case) of an uplink topic; None for any other topic.

    >>> topic_device("application/2c8b5a4e/device/0102030405060A0B/event/up")
    ('2c8b5a4e', '0102030405060a0b')
    >>> topic_device("application/2c8b5a4e/device/0102030405060a0b/event/join") is None
    True
    """
    parts = topic.split("/")
    if (
        len(parts) != 6
        or parts[0] != "application"
        or parts[2] != "device"
        or parts[4] != "event"
        or parts[5] != "up"
        or not parts[1]
        or not EUI_RE.fullmatch(parts[3])
    ):
        return None
    return parts[1], parts[3].lower()


def parse_uplink(
    body: bytes, *, received_at: datetime, limits: Limits, topic: str | None = None
) -> Uplink:
    """One uplink event as an `Uplink`, or a `Rejection` (BAD_EVENT names the field at fault).

    `time` is the event's own (ChirpStack's receive time of the uplink), else the earliest
    gateway time in `rxInfo` (`gwTime`, then `nsTime`), else `received_at`. With `topic` (an MQTT
    delivery on ChirpStack's default topic), the topic's application and DevEUI must be the
    event's.
    """
    doc = decode_object(body, limits=limits, what="a ChirpStack uplink event")
    info = get_object(doc, "deviceInfo", path="deviceInfo")
    if info is None:
        raise Rejection(Reason.BAD_EVENT, "deviceInfo is missing: not a ChirpStack event")
    device_key = dev_eui(
        get_str(info, "devEui", path="deviceInfo.devEui"), path="deviceInfo.devEui"
    )
    application = server_id(
        get_str(info, "applicationId", path="deviceInfo.applicationId"),
        path="deviceInfo.applicationId",
    )
    if topic is not None:
        _check_topic(topic, application=application, device_key=device_key)

    payload = _payload(doc)
    decoded = get_object(doc, "object", path="object")
    if decoded is not None:
        check_tree(decoded, path="object")
    if not payload and decoded is None:
        if "fCnt" not in doc and "data" not in doc:
            raise Rejection(Reason.BAD_EVENT, "no fCnt, data or object: not an uplink event")
        raise Rejection(Reason.BAD_EVENT, "the uplink has neither data nor object")

    f_port = get_int(doc, "fPort", path="fPort", top=F_PORT_MAX) or 0
    f_cnt = get_int(doc, "fCnt", path="fCnt", top=U32_MAX) or 0
    dedup_id = server_id(
        get_str(doc, "deduplicationId", path="deduplicationId"), path="deduplicationId"
    )
    rx_info = _rx_info(doc)
    time = get_time(doc, "time", path="time") or _gateway_time(rx_info) or received_at
    check_window(time, received_at=received_at, limits=limits)
    return Uplink(
        source=SOURCE,
        device_key=device_key,
        time=time,
        payload=payload or None,
        decoded=decoded,
        f_port=f_port,
        f_cnt=f_cnt,
        dedup_id=dedup_id,
        application=application,
        link=_link(rx_info),
    )


def _check_topic(topic: str, *, application: str | None, device_key: str) -> None:
    parsed = topic_device(topic)
    if parsed is None:
        event = topic.rsplit("/", 1)[-1]
        if event in _OTHER_EVENTS:
            raise Rejection(Reason.BAD_EVENT, f"a {event} event, not an uplink")
        raise Rejection(Reason.BAD_TOPIC, "expected application/{id}/device/{dev_eui}/event/up")
    if parsed != (application, device_key):
        raise Rejection(
            Reason.BAD_EVENT,
            f"the topic names {parsed[0]}/{parsed[1]}, the event {application}/{device_key}",
        )


def _payload(doc: dict[str, Any]) -> bytes:
    data = get_str(doc, "data", path="data")
    return decode_base64(data, path="data") if data is not None else b""


class _Rx(NamedTuple):
    """What TownPulse keeps of one gateway's reception."""

    rssi: float | None
    snr: float
    gw_time: datetime | None
    ns_time: datetime | None


def _rx_info(doc: dict[str, Any]) -> list[_Rx] | None:
    items = get_list(doc, "rxInfo", path="rxInfo")
    if items is None:
        return None
    receptions = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise Rejection(Reason.BAD_EVENT, f"rxInfo[{i}] must be an object")
        get_str(item, "gatewayId", path=f"rxInfo[{i}].gatewayId")
        receptions.append(
            _Rx(
                # The `gw` messages omit zero values: a missing `snr` is 0 dB; a missing `rssi`
                # is taken as unknown rather than 0 dBm, which no real link reaches.
                rssi=get_number(item, "rssi", path=f"rxInfo[{i}].rssi"),
                snr=get_number(item, "snr", path=f"rxInfo[{i}].snr") or 0.0,
                gw_time=get_time(item, "gwTime", path=f"rxInfo[{i}].gwTime"),
                ns_time=get_time(item, "nsTime", path=f"rxInfo[{i}].nsTime"),
            )
        )
    return receptions


def _gateway_time(rx_info: list[_Rx] | None) -> datetime | None:
    """The earliest gateway time (GPS or the gateway's clock), else the earliest server time."""
    gw_times = [rx.gw_time for rx in rx_info or () if rx.gw_time is not None]
    if gw_times:
        return min(gw_times)
    ns_times = [rx.ns_time for rx in rx_info or () if rx.ns_time is not None]
    return min(ns_times) if ns_times else None


def _link(rx_info: list[_Rx] | None) -> Link:
    """The best RSSI and the best SNR over the receiving gateways, and how many received it.

    Each maximum on its own, as ChirpStack computes its device metrics and ADR history.
    """
    if rx_info is None:
        return Link()
    rssis = [rx.rssi for rx in rx_info if rx.rssi is not None]
    return Link(
        rssi=max(rssis) if rssis else None,
        snr=max((rx.snr for rx in rx_info), default=None),
        gateways=len(rx_info),
    )
