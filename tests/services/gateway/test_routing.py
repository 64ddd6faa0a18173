"""Routing decisions of the gateway (pure logic; the registry is a fake)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from services.gateway.app import Gateway
from services.gateway.ingest.rejection import Limits
from services.gateway.intake import IntakeBound
from services.gateway.mqtt_source import Incoming
from services.gateway.uplinks import Recent
from shared.schemas import DeadLetter, ReadingBatch
from shared.topics import DEADLETTER_TOPIC, Domain

pytestmark = pytest.mark.unit


class FakeRegistry:
    def __init__(self, devices: dict[str, Domain]) -> None:
        self.devices = devices

    async def domain_of(self, device_id: str) -> Domain | None:
        return self.devices.get(device_id)


def _gateway(devices: dict[str, Domain]) -> Gateway:
    return Gateway(
        producer=cast(Any, None),
        registry=cast(Any, FakeRegistry(devices)),
        limits=Limits(),
        mapper=cast(Any, None),
        intake=IntakeBound(qos0_max=1000),
    )


def _msg(topic: str, payload: object) -> Incoming:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Incoming(
        topic=topic, payload=raw, mid=1, qos=1, generation=1, received_at=datetime.now(UTC)
    )


async def test_valid_reading_goes_to_its_domain_topic_keyed_by_device() -> None:
    out = await _gateway({"bin-1": Domain.WASTE}).route(
        _msg("sensors/waste/bin-1", {"fill_pct": 40})
    )
    assert out.topic == "readings.waste"
    assert out.key == b"bin-1"
    batch = ReadingBatch.from_bytes(out.value)
    assert [(r.metric, r.value) for r in batch.readings] == [("fill_pct", 40.0)]


@pytest.mark.parametrize(
    ("topic", "devices", "reason"),
    [
        ("sensors/waste/ghost", {}, "unknown_device"),
        ("sensors/waste/bin-1", {"bin-1": Domain.ENERGY}, "domain_mismatch"),
        ("sensors/water/bin-1", {"bin-1": Domain.WASTE}, "bad_topic"),
        ("elsewhere/bin-1", {"bin-1": Domain.WASTE}, "bad_topic"),
    ],
)
async def test_rejections_are_dead_lettered_with_reason(
    topic: str, devices: dict[str, Domain], reason: str
) -> None:
    out = await _gateway(devices).route(_msg(topic, {"fill_pct": 1}))
    assert out.topic == DEADLETTER_TOPIC
    letter = DeadLetter.from_bytes(out.value)
    assert letter.reason == reason
    assert letter.topic == topic


async def test_dead_letter_payload_is_truncated_but_size_kept() -> None:
    big = b"x" * 100_000
    out = await _gateway({"bin-1": Domain.WASTE}).route(_msg("sensors/waste/bin-1", big))
    letter = DeadLetter.from_bytes(out.value)
    assert letter.reason == "payload_too_large"
    assert len(letter.payload) == 1024
    assert letter.payload_size == 100_000


def _gateway_with_clock(devices: dict[str, Domain], now: list[float]) -> Gateway:
    gateway = _gateway(devices)
    gateway.confirmed = Recent(max_keys=100, max_age_s=600, clock=lambda: now[0])
    return gateway


async def test_a_message_whose_readings_kafka_confirmed_is_not_produced_again() -> None:
    now = [0.0]
    gateway = _gateway_with_clock({"bin-1": Domain.WASTE}, now)
    msg = _msg("sensors/waste/bin-1", {"ts": "2026-12-01T10:00:00Z", "fill_pct": 40})
    first = await gateway.route(msg)
    assert first is not None and first.readings is not None
    # Routed but not yet confirmed: its produce may still fail, so a second copy is produced.
    assert await gateway.route(msg) is not None
    gateway.confirmed.add(first.readings)  # what the acker does once Kafka has the record
    assert await gateway.route(msg) is None
    # Another reading of the same device, or the same one at another time, is new.
    other = _msg("sensors/waste/bin-1", {"ts": "2026-12-01T10:00:01Z", "fill_pct": 40})
    assert await gateway.route(other) is not None


async def test_the_same_readings_after_the_dedup_window_are_produced_again() -> None:
    now = [0.0]
    gateway = _gateway_with_clock({"bin-1": Domain.WASTE}, now)
    msg = _msg("sensors/waste/bin-1", {"ts": "2026-12-01T10:00:00Z", "fill_pct": 40})
    first = await gateway.route(msg)
    assert first is not None and first.readings is not None
    gateway.confirmed.add(first.readings)
    now[0] = 599.0
    assert await gateway.route(msg) is None
    now[0] = 601.0
    # Forgotten: produced again, and storage's unique key (device, metric, time) stores it once.
    again = await gateway.route(msg)
    assert again is not None and again.readings == first.readings
