"""Devices that publish their own JSON on MQTT: Tasmota and Shelly Gen2 energy meters.

Their JSON goes to the device's profile as the decoded object, like a codec's output.

- Tasmota: `tele/<topic>/SENSOR`, every TelePeriod, e.g.
  `{"Time": "2026-12-07T10:00:00", "ENERGY": {"TotalStartTime": "...", "Total": 12.345,
  "Yesterday": 0.8, "Today": 0.2, "Power": 120, "Voltage": 230, "Current": 0.52}}` (Total in kWh).
  `Time` is the device's local time without an offset (unless SetOption52 adds one).
- Shelly Gen2/Gen3: `<id>/status/switch:<n>` (status notifications), e.g.
  `{"id": 0, "source": "timer", "output": true, "apower": 12.3, "voltage": 230.1,
  "current": 0.1, "aenergy": {"total": 1234.5, "by_minute": [...], "minute_ts": 1765101600},
  "temperature": {"tC": 40.1, "tF": 104.2}}` (aenergy.total in Wh).

From an external broker the topics are the devices' defaults; on TownPulse's broker a device with
its own credentials publishes under its own topic, `sensors/<domain>/<device_id>/tele/SENSOR` or
`sensors/<domain>/<device_id>/status/switch:0`: set Tasmota's FullTopic to
`sensors/<domain>/<device_id>/%prefix%/`, or Shelly's MQTT prefix to
`sensors/<domain>/<device_id>`.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, Literal

from services.gateway.ingest.common import (
    EXTERNAL_ID_RE,
    body_digest,
    check_tree,
    check_window,
    decode_object,
    from_unix,
    get_number,
    get_object,
    get_str,
    parse_iso,
    to_utc,
)
from services.gateway.ingest.native import DeviceTopic
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from services.gateway.ingest.uplink import Uplink
from shared.topics import DEVICE_ID_RE, MQTT_TOPIC_PREFIX, Domain

Format = Literal["tasmota", "shelly"]
# The topic filters for an external broker (TownPulse's own: shared/mqtt_admin.py's
# OWN_FORMAT_SUBTOPICS below a device's topic); `switch:<n>` cannot be matched by a wildcard, so
# the Shelly filter takes every status component and `topic_device` keeps the switches.
EXTERNAL_SUBSCRIPTIONS = ("tele/+/SENSOR", "+/status/+")
# A Shelly Pro 4PM has four switches; none has more than a handful.
MAX_SWITCH = 15


def topic_device(topic: str) -> tuple[Format, str] | None:
    """(format, device) of a Tasmota or Shelly topic; None for any other topic.

    The device is the Tasmota topic or the Shelly id, with `:switch:<n>` added for a Shelly's
    second and later switches (each meters its own circuit); under `sensors/` it is TownPulse's
    device id (`townpulse_topic` gives its domain too).

    >>> topic_device("tele/kitchen-plug/SENSOR")
    ('tasmota', 'kitchen-plug')
    >>> topic_device("shellypro4pm-a8032ab12345/status/switch:2")
    ('shelly', 'shellypro4pm-a8032ab12345:switch:2')
    >>> topic_device("sensors/energy/meter-3/status/switch:0")
    ('shelly', 'meter-3')
    """
    parts = topic.split("/")
    if parts[0] == MQTT_TOPIC_PREFIX:
        found = _townpulse_topic(parts)
        return (found[0], found[1].device_id) if found else None
    if len(parts) == 3 and parts[0] == "tele" and parts[2] == "SENSOR":
        name = parts[1]
        return ("tasmota", name) if EXTERNAL_ID_RE.fullmatch(name) else None
    if len(parts) == 3 and parts[1] == "status":
        switch = _switch(parts[2])
        if switch is None or not EXTERNAL_ID_RE.fullmatch(parts[0]):
            return None
        device = parts[0] if switch == 0 else f"{parts[0]}:switch:{switch}"
        return ("shelly", device) if EXTERNAL_ID_RE.fullmatch(device) else None
    return None


def townpulse_topic(topic: str) -> tuple[Format, DeviceTopic] | None:
    """(format, device) of a device's own JSON on TownPulse's broker, under its own topic.

    >>> townpulse_topic("sensors/energy/meter-3/tele/SENSOR")
    ('tasmota', DeviceTopic(domain=<Domain.ENERGY: 'energy'>, device_id='meter-3'))
    >>> townpulse_topic("sensors/energy/meter-3") is None
    True
    """
    return _townpulse_topic(topic.split("/"))


def _townpulse_topic(parts: list[str]) -> tuple[Format, DeviceTopic] | None:
    if len(parts) != 5 or parts[0] != MQTT_TOPIC_PREFIX or not DEVICE_ID_RE.fullmatch(parts[2]):
        return None
    try:
        device = DeviceTopic(domain=Domain(parts[1]), device_id=parts[2])
    except ValueError:
        return None
    if parts[3:] == ["tele", "SENSOR"]:
        return "tasmota", device
    # A TownPulse device id names one meter: only a Shelly's first switch maps to it.
    if parts[3:] == ["status", "switch:0"]:
        return "shelly", device
    return None


def _switch(component: str) -> int | None:
    prefix, _, number = component.partition(":")
    if prefix != "switch" or not number.isascii() or not number.isdigit():
        return None
    n = int(number)
    # "switch:00" is not a name Shelly uses; refusing it keeps one device one key.
    return n if n <= MAX_SWITCH and str(n) == number else None


def parse_tasmota(
    topic_name: str,
    body: bytes,
    *,
    received_at: datetime,
    limits: Limits,
    zone: tzinfo | None = None,
) -> Uplink:
    """A Tasmota SENSOR message as an `Uplink` whose decoded object is the message itself.

    The time: `Time` when it carries a UTC offset; else `Time` read in `zone` when the
    integration names the devices' time zone; else the arrival time. Tasmota publishes the
    moment it measures and keeps nothing while offline, so the arrival is within the broker's
    delay of the reading, while a local time read in the wrong zone would be off by hours.
    """
    doc = decode_object(body, limits=limits, what="a Tasmota SENSOR message")
    check_tree(doc, path="message")
    if not any(key != "Time" for key in doc):
        raise Rejection(Reason.BAD_EVENT, "the message holds no sensor")
    get_object(doc, "ENERGY", path="ENERGY")
    time = _tasmota_time(get_str(doc, "Time", path="Time"), zone=zone) or received_at
    check_window(time, received_at=received_at, limits=limits)
    return _uplink("tasmota", topic_name, body, doc, time=time)


def _tasmota_time(value: str | None, *, zone: tzinfo | None) -> datetime | None:
    if value is None:
        return None
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        raise Rejection(Reason.INVALID_TIMESTAMP, f"Time is not ISO 8601: {value[:40]!r}") from None
    if local.tzinfo is not None:
        return parse_iso(value)
    if zone is None:
        return None
    return to_utc(local.replace(tzinfo=zone), value)


def parse_shelly(topic_name: str, body: bytes, *, received_at: datetime, limits: Limits) -> Uplink:
    """A Shelly switch status as an `Uplink` whose decoded object is the status itself.

    The time is `aenergy.minute_ts` (Unix seconds, the device's clock: the start of the minute
    its counters were last rolled) when present, else the arrival time.
    """
    doc = decode_object(body, limits=limits, what="a Shelly switch status")
    check_tree(doc, path="message")
    switch = doc.get("id")
    if switch is not None and (isinstance(switch, bool) or not isinstance(switch, int)):
        raise Rejection(Reason.BAD_EVENT, f"id must be an integer, got {type(switch).__name__}")
    energy = get_object(doc, "aenergy", path="aenergy")
    minute_ts = get_number(energy, "minute_ts", path="aenergy.minute_ts") if energy else None
    if energy is not None:
        get_number(energy, "total", path="aenergy.total")
    time = from_unix(minute_ts) if minute_ts is not None else received_at
    check_window(time, received_at=received_at, limits=limits)
    return _uplink("shelly", topic_name, body, doc, time=time)


def _uplink(
    source: Format, device: str, body: bytes, doc: dict[str, Any], *, time: datetime
) -> Uplink:
    if not EXTERNAL_ID_RE.fullmatch(device):
        raise Rejection(Reason.BAD_TOPIC, f"{device[:40]!r} cannot name a device")
    # Neither format carries a message id: the same bytes twice are one message delivered twice
    # (MQTT QoS 1), while two statuses within one minute (same minute_ts) stay two.
    return Uplink(
        source=source, device_key=device, time=time, decoded=doc, dedup_id=body_digest(body)
    )
