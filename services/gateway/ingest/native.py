"""TownPulse's own formats on `sensors/{domain}/{device_id}`: a flat JSON object or a SenML pack.

Pure functions: bytes in, a `ReadingBatch` or a `Rejection` out. Each rejection carries a
machine-readable reason (one of `Reason`), which the gateway counts and dead-letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.gateway.ingest.common import (
    check_size,
    check_window,
    decode_json,
    metric_name,
    number,
    parse_ts,
)
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from services.gateway.ingest.senml import parse_senml
from shared.schemas import Reading, ReadingBatch
from shared.topics import DEVICE_ID_RE, MQTT_TOPIC_PREFIX, Domain


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    domain: Domain
    device_id: str


def parse_topic(topic: str) -> DeviceTopic:
    """Split `sensors/{domain}/{device_id}`.

    >>> parse_topic("sensors/waste/bin-17")
    DeviceTopic(domain=<Domain.WASTE: 'waste'>, device_id='bin-17')
    """
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != MQTT_TOPIC_PREFIX:
        raise Rejection(Reason.BAD_TOPIC, f"expected {MQTT_TOPIC_PREFIX}/{{domain}}/{{device_id}}")
    try:
        domain = Domain(parts[1])
    except ValueError:
        raise Rejection(Reason.BAD_TOPIC, f"unknown domain {parts[1]!r}") from None
    # fullmatch: `$` alone would also accept a trailing newline.
    if not DEVICE_ID_RE.fullmatch(parts[2]):
        raise Rejection(Reason.BAD_TOPIC, "invalid device id")
    return DeviceTopic(domain=domain, device_id=parts[2])


def parse_payload(
    topic: DeviceTopic, payload: bytes, *, received_at: datetime, limits: Limits
) -> ReadingBatch:
    """Turn one MQTT payload into a batch of readings, or raise `Rejection`."""
    check_size(payload, limits)
    doc = decode_json(payload)
    if isinstance(doc, dict):
        readings = _parse_flat(doc, received_at=received_at)
    elif isinstance(doc, list):
        readings = parse_senml(doc, received_at=received_at, limits=limits)
    else:
        raise Rejection(Reason.WRONG_SHAPE, "expected a JSON object or a SenML array")
    if not readings:
        raise Rejection(Reason.NO_METRICS, "the message holds no reading")
    if len(readings) > limits.max_records:
        raise Rejection(
            Reason.TOO_MANY_RECORDS, f"{len(readings)} readings > limit {limits.max_records}"
        )
    for r in readings:
        check_window(r.ts, received_at=received_at, limits=limits)
    return ReadingBatch(
        device_id=topic.device_id, domain=topic.domain, received_at=received_at, readings=readings
    )


def _parse_flat(doc: dict[str, Any], *, received_at: datetime) -> list[Reading]:
    try:
        ts = parse_ts(doc.get("ts"), received_at=received_at)
        return [
            Reading(
                ts=ts,
                metric=metric_name(k),
                value=number(v, reason=Reason.NON_NUMERIC_VALUE, what=k),
            )
            for k, v in doc.items()
            if k != "ts"
        ]
    except OverflowError:
        raise Rejection(Reason.NON_FINITE_NUMBER, "number out of range") from None
