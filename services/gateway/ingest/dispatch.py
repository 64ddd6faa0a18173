"""The one interface the gateway calls: a message, by where it came from, to an `Uplink`."""

from __future__ import annotations

from datetime import datetime, tzinfo

from services.gateway.ingest import chirpstack, mapped, tts
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from services.gateway.ingest.uplink import Uplink


def parse_integration_message(
    kind: str,
    topic: str,
    payload: bytes,
    *,
    received_at: datetime,
    limits: Limits,
    default_topic: bool = True,
    zone: tzinfo | None = None,
) -> Uplink:
    """A message from an integration's broker (ChirpStack, TTS, or devices' own JSON).

    On the network server's default topic, the topic's application and device must be the
    event's; a topic the town configured itself says nothing about them."""
    checked = topic if default_topic else None
    if kind == "chirpstack":
        return chirpstack.parse_uplink(
            payload, received_at=received_at, limits=limits, topic=checked
        )
    if kind == "tts":
        return tts.parse_uplink(payload, received_at=received_at, limits=limits, topic=checked)
    if kind == "mqtt_json":
        return parse_mapped(topic, payload, received_at=received_at, limits=limits, zone=zone)
    raise Rejection(Reason.BAD_TOPIC, f"no format for integrations of kind {kind!r}")


def parse_http_uplink(kind: str, body: bytes, *, received_at: datetime, limits: Limits) -> Uplink:
    """A network server's HTTP push (ChirpStack's HTTP integration, a TTS webhook)."""
    if kind == "chirpstack":
        return chirpstack.parse_uplink(body, received_at=received_at, limits=limits)
    if kind == "tts":
        return tts.parse_uplink(body, received_at=received_at, limits=limits)
    raise Rejection(Reason.BAD_TOPIC, f"no HTTP format for integrations of kind {kind!r}")


class Ignored(Exception):
    """A message with nothing to read in it: acknowledged, neither produced nor dead-lettered."""


def parse_mapped(
    topic: str,
    payload: bytes,
    *,
    received_at: datetime,
    limits: Limits,
    zone: tzinfo | None = None,
) -> Uplink:
    """A device's own JSON (Tasmota, Shelly), recognised by its topic. Tasmota's `Time` has no
    offset: it is read in `zone`, the town's (Tasmota's clock is set to local time)."""
    found = mapped.topic_device(topic)
    if found is None and "/status/" in topic:
        # The subscriptions take every status component (a wildcard cannot say `switch:<n>`).
        raise Ignored(topic)
    if found is None:
        raise Rejection(Reason.BAD_TOPIC, "neither tele/<name>/SENSOR nor <id>/status/switch:<n>")
    fmt, name = found
    if fmt == "tasmota":
        return mapped.parse_tasmota(
            name, payload, received_at=received_at, limits=limits, zone=zone
        )
    return mapped.parse_shelly(name, payload, received_at=received_at, limits=limits)
