"""Helpers for the alerts tests: episode events straight onto Kafka, subscriptions via the API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared.schemas import AlertEvent, ReadingBatch, Severity
from shared.topics import ALERTS_TOPIC, READINGS_TOPICS, Domain


def event(
    device_id: str,
    kind: str,
    phase: str,
    *,
    episode_start: datetime,
    ts: datetime,
    severity: Severity = Severity.WARNING,
    domain: Domain = Domain.ENERGY,
) -> AlertEvent:
    return AlertEvent(
        event_id=AlertEvent.make_id(
            device_id=device_id, kind=kind, episode_start=episode_start, phase=phase
        ),
        device_id=device_id,
        domain=domain,
        kind=kind,
        phase=phase,  # type: ignore[arg-type]
        severity=severity,
        episode_start=episode_start,
        ts=ts,
        explanation={"expected": 1.0, "observed": 3.0, "message": "test episode"},
    )


def produce_events(bootstrap: str, events: Iterable[AlertEvent]) -> None:
    asyncio.run(_produce(bootstrap, [(ALERTS_TOPIC, e.device_id, e.to_bytes()) for e in events]))


def produce_readings(bootstrap: str, batches: Iterable[ReadingBatch]) -> None:
    asyncio.run(
        _produce(
            bootstrap, [(READINGS_TOPICS[b.domain], b.device_id, b.to_bytes()) for b in batches]
        )
    )


async def _produce(bootstrap: str, records: list[tuple[str, str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        # Sent together (one request for all), so the service sees them in one or two batches.
        futures = [await producer.send(t, v, key=k.encode()) for t, k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def unique_kind(prefix: str = "test") -> str:
    return f"{prefix}.k{uuid.uuid4().hex[:10]}"


def subscribe(api: httpx.Client, url: str, **fields: object) -> dict[str, Any]:
    r = api.post("/v1/webhooks", json={"url": url, **fields})
    assert r.status_code == 201, r.text
    return dict(r.json())


def deliveries(api: httpx.Client, sub_id: str, **params: Any) -> list[dict[str, Any]]:
    r = api.get(f"/v1/webhooks/{sub_id}/deliveries", params={"limit": 5000, **params})
    assert r.status_code == 200, r.text
    return list(r.json())
