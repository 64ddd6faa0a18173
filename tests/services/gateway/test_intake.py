"""The gateway's intake bound: QoS 0 dropped past it and counted, QoS 1 never (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY

from services.gateway.app import Gateway
from services.gateway.ingest.rejection import Limits
from services.gateway.intake import IntakeBound
from services.gateway.mqtt_source import Incoming

pytestmark = pytest.mark.unit


def _msg(qos: int) -> Incoming:
    return Incoming(
        topic="sensors/waste/bin-1",
        payload=b"{}",
        mid=0 if qos == 0 else 1,
        qos=qos,
        generation=1,
        received_at=datetime.now(UTC),
    )


def _dropped() -> float:
    return REGISTRY.get_sample_value("townpulse_gateway_qos0_dropped_total") or 0.0


def test_qos0_past_the_bound_is_refused_until_one_is_taken() -> None:
    bound = IntakeBound(qos0_max=3)
    assert [bound.admit(0) for _ in range(4)] == [True, True, True, False]
    bound.taken(0)
    assert bound.admit(0)
    assert not bound.admit(0)


def test_qos1_is_always_admitted_and_leaves_the_qos0_allowance_alone() -> None:
    bound = IntakeBound(qos0_max=1)
    assert all(bound.admit(1) for _ in range(10_000))
    bound.taken(1)
    assert bound.admit(0)
    assert not bound.admit(0)


async def test_the_gateway_drops_and_counts_qos0_past_its_bound_and_queues_every_qos1() -> None:
    gateway = Gateway(
        producer=cast(Any, None),
        registry=cast(Any, None),
        limits=Limits(),
        mapper=cast(Any, None),
        intake=IntakeBound(qos0_max=2),
    )
    before = _dropped()
    for _ in range(5):
        gateway.offer(_msg(0))
    for _ in range(50):
        gateway.offer(_msg(1))
    assert _dropped() - before == 3
    queued = [gateway._queue.get_nowait().qos for _ in range(gateway._queue.qsize())]
    assert queued == [0, 0] + [1] * 50
