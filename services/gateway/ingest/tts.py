"""The Things Stack v3 uplink messages (`ApplicationUp` with `uplink_message`), MQTT or webhook.

Its MQTT server publishes on `v3/{application id}@{tenant id}/devices/{device id}/up` (`@{tenant}`
only on multi-tenant deployments such as The Things Network, tenant `ttn`), and its webhooks POST
the same JSON. The Things Stack writes protobuf field names (snake_case) and omits empty fields:
`""`, `0` and `false` are absent ("Data formats" in its documentation), so `f_port`, `f_cnt`,
`frm_payload` and `snr` may be missing and mean 0 or empty.

    {"end_device_ids": {"device_id": "bin-17", "application_ids": {"application_id": "town"},
                        "dev_eui": "0004A30B001C0530", "dev_addr": "00BCB929"},
     "correlation_ids": ["as:up:01...", "gs:uplink:01..."],
     "received_at": "2026-12-07T10:00:00.312Z",
     "uplink_message": {"f_port": 85, "f_cnt": 42, "frm_payload": "AXVcA4JECAQAAQ==",
                        "decoded_payload": {"distance": 2116, ...},
                        "rx_metadata": [{"gateway_ids": {"gateway_id": "gw-1"}, "rssi": -90,
                                         "channel_rssi": -90, "snr": 7.5, ...}],
                        "settings": {...}, "received_at": "2026-12-07T10:00:00.104Z",
                        "consumed_airtime": "0.061696s",
                        "network_ids": {"net_id": "000013", "tenant_id": "ttn", ...}}}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.gateway.ingest.common import (
    EXTERNAL_ID_RE,
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

SOURCE = "tts"
DEFAULT_SUBSCRIPTION = "v3/+/devices/+/up"
U32_MAX = 2**32 - 1
F_PORT_MAX = 255
_APP_ID = "end_device_ids.application_ids.application_id"
# The other messages an `ApplicationUp` can carry, named in the rejection when one comes here
# (a webhook with several message types on one path, or a topic filter wider than `/up`).
_OTHER_MESSAGES = (
    "join_accept",
    "downlink_ack",
    "downlink_nack",
    "downlink_sent",
    "downlink_failed",
    "downlink_queued",
    "downlink_queue_invalidated",
    "location_solved",
    "service_data",
    "uplink_normalized",
)


def subscription(application: str | None) -> str:
    """The topic filter for one application's uplinks (`app` or `app@tenant`), or every one's.

    >>> subscription("town-bins@ttn")
    'v3/town-bins@ttn/devices/+/up'
    >>> subscription(None)
    'v3/+/devices/+/up'
    """
    if application is None:
        return DEFAULT_SUBSCRIPTION
    if not application or any(c in application for c in "/+#"):
        raise ValueError(f"not a Things Stack application id: {application!r}")
    return f"v3/{application}/devices/+/up"


def topic_device(topic: str) -> tuple[str, str] | None:
    """(application as the topic names it, `app` or `app@tenant`; device id) of an uplink topic.

    >>> topic_device("v3/town-bins@ttn/devices/eui-0004a30b001c0530/up")
    ('town-bins@ttn', 'eui-0004a30b001c0530')
    >>> topic_device("v3/town-bins@ttn/devices/bin-17/join") is None
    True
    """
    parts = topic.split("/")
    if (
        len(parts) != 5
        or parts[0] != "v3"
        or parts[2] != "devices"
        or parts[4] != "up"
        or not parts[1]
        or not parts[3]
    ):
        return None
    return parts[1], parts[3]


def parse_uplink(
    body: bytes, *, received_at: datetime, limits: Limits, topic: str | None = None
) -> Uplink:
    """One uplink message as an `Uplink`, or a `Rejection` (BAD_EVENT names the field at fault).

    - `device_key`: the DevEUI in lower case; a device registered without one (LoRaWAN 1.0 ABP
      allows it) is named by its device id, to be registered by external id.
    - `time`: when the Network Server received the uplink (`uplink_message.received_at`): the
      same in every delivery of it, unlike the Application Server's top-level `received_at`,
      which is the fallback, then `received_at` here.
    - `application`: `app@tenant` when the topic names a tenant, else with the tenant of
      `uplink_message.network_ids` when given, else the bare application id.
    - `dedup_id`: none. The Things Stack has no deduplication id (its correlation ids differ per
      path), so `Uplink.dedup_key` falls back to the frame counter and time.

    With `topic` (an MQTT delivery), the topic's application and device must be the message's.
    """
    doc = decode_object(body, limits=limits, what="a Things Stack uplink message")
    message = get_object(doc, "uplink_message", path="uplink_message")
    if message is None:
        other = next((key for key in _OTHER_MESSAGES if key in doc), None)
        shown = f"a {other} message" if other else "no uplink_message"
        raise Rejection(Reason.BAD_EVENT, f"not an uplink: {shown}")
    ids = get_object(doc, "end_device_ids", path="end_device_ids")
    if ids is None:
        raise Rejection(Reason.BAD_EVENT, "end_device_ids is missing")
    device_id = get_str(ids, "device_id", path="end_device_ids.device_id")
    if device_id is None:
        raise Rejection(Reason.BAD_EVENT, "end_device_ids.device_id is missing")
    app_ids = get_object(ids, "application_ids", path="end_device_ids.application_ids")
    app_id = get_str(app_ids or {}, "application_id", path=_APP_ID)
    if app_id is None:
        raise Rejection(Reason.BAD_EVENT, f"{_APP_ID} is missing")
    eui = get_str(ids, "dev_eui", path="end_device_ids.dev_eui")
    if eui is not None:
        device_key = dev_eui(eui, path="end_device_ids.dev_eui")
    elif EXTERNAL_ID_RE.fullmatch(device_id):
        device_key = device_id
    else:
        raise Rejection(
            Reason.BAD_EVENT, f"no dev_eui, and device_id {device_id[:40]!r} cannot name a device"
        )
    application = _application(app_id, message, topic=topic, device_id=device_id)

    data = get_str(message, "frm_payload", path="uplink_message.frm_payload")
    payload = decode_base64(data, path="uplink_message.frm_payload") if data else None
    decoded = get_object(message, "decoded_payload", path="uplink_message.decoded_payload")
    if decoded is not None:
        check_tree(decoded, path="uplink_message.decoded_payload")
    if not payload and decoded is None:
        raise Rejection(Reason.BAD_EVENT, "the uplink has neither frm_payload nor decoded_payload")
    f_port = get_int(message, "f_port", path="uplink_message.f_port", top=F_PORT_MAX) or 0
    f_cnt = get_int(message, "f_cnt", path="uplink_message.f_cnt", top=U32_MAX) or 0
    link = _link(message)
    time = (
        get_time(message, "received_at", path="uplink_message.received_at")
        or get_time(doc, "received_at", path="received_at")
        or received_at
    )
    check_window(time, received_at=received_at, limits=limits)
    return Uplink(
        source=SOURCE,
        device_key=device_key,
        time=time,
        payload=payload,
        decoded=decoded,
        f_port=f_port,
        f_cnt=f_cnt,
        dedup_id=None,
        application=application,
        link=link,
    )


def _application(
    app_id: str, message: dict[str, Any], *, topic: str | None, device_id: str
) -> str | None:
    server_id(app_id, path=_APP_ID)
    if topic is not None:
        parsed = topic_device(topic)
        if parsed is None:
            raise Rejection(Reason.BAD_TOPIC, "expected v3/{application}/devices/{device}/up")
        topic_app, topic_device_id = parsed
        if topic_app.split("@", 1)[0] != app_id or topic_device_id != device_id:
            raise Rejection(
                Reason.BAD_EVENT,
                f"the topic names {topic_app}/{topic_device_id}, the message {app_id}/{device_id}",
            )
        return server_id(topic_app, path="topic")
    network = get_object(message, "network_ids", path="uplink_message.network_ids")
    tenant = (
        get_str(network, "tenant_id", path="uplink_message.network_ids.tenant_id")
        if network is not None
        else None
    )
    return server_id(f"{app_id}@{tenant}" if tenant else app_id, path="network_ids.tenant_id")


def _link(message: dict[str, Any]) -> Link:
    """The best RSSI and the best SNR over the receiving gateways, and how many received it.

    `rssi` is the signal strength of the whole channel (`channel_rssi`) when the gateway does
    not report one of its own. Zero values are omitted: a missing `snr` is 0 dB, and a missing
    RSSI is unknown, since 0 dBm is not a real link's.
    """
    items = get_list(message, "rx_metadata", path="uplink_message.rx_metadata")
    if items is None:
        return Link()
    rssis: list[float] = []
    snrs: list[float] = []
    for i, item in enumerate(items):
        path = f"uplink_message.rx_metadata[{i}]"
        if not isinstance(item, dict):
            raise Rejection(Reason.BAD_EVENT, f"{path} must be an object")
        rssi = get_number(item, "rssi", path=f"{path}.rssi")
        channel_rssi = get_number(item, "channel_rssi", path=f"{path}.channel_rssi")
        if rssi is None:
            rssi = channel_rssi
        if rssi is not None:
            rssis.append(rssi)
        snrs.append(get_number(item, "snr", path=f"{path}.snr") or 0.0)
    return Link(
        rssi=max(rssis) if rssis else None,
        snr=max(snrs) if snrs else None,
        gateways=len(items),
    )
