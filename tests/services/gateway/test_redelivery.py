"""A message delivered again after Kafka confirmed its readings is acknowledged, not produced
again: counted on the readings topic, before storage's unique key could hide a double.

A device re-sends what its broker did not acknowledge, and the broker redelivers to the gateway
what the gateway did not acknowledge (its connection dropped, the broker stopped, the gateway
was killed): both bring the same payload again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from testing.prometheus import metric_value
from tests.lorawan_support import end_offsets, records_for
from tests.support import Publisher, count_readings, wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.integration


def _payload(ts: datetime, value: float) -> str:
    return json.dumps({"ts": ts.isoformat().replace("+00:00", "Z"), "energy_kwh": value})


def _duplicates(gateway_url: str) -> float:
    return metric_value(
        httpx.get(f"{gateway_url}/metrics").text,
        "townpulse_gateway_duplicate_uplinks_total",
        source="mqtt",
    )


def _resend_then_mark(
    api: httpx.Client, pub: Publisher, device_id: str, *, base: datetime, stored: int
) -> None:
    """The first message again, then a new one: the gateway routes in arrival order, so once
    the new one is stored the resend has been dealt with."""
    pub.publish(_payload(base, 1.0)).wait_for_publish(30)
    pub.publish(_payload(base + timedelta(seconds=1), 2.0)).wait_for_publish(30)
    wait_for(
        lambda: count_readings(api, device_id) == stored + 1,
        timeout=60,
        what="the message after the resend to be stored",
    )


def test_a_resend_of_a_confirmed_message_is_not_produced_again(
    api: httpx.Client, stack_env, service_urls, device_factory, publisher_factory
) -> None:
    device = device_factory("energy")
    pub = publisher_factory(device)
    bootstrap = stack_env["KAFKA_BOOTSTRAP"]
    offsets = end_offsets(bootstrap, "readings.energy")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    pub.publish(_payload(base, 1.0)).wait_for_publish(30)
    # Stored: Kafka confirmed it to the gateway before storage could read it.
    wait_for(lambda: count_readings(api, device.id) == 1, timeout=60, what="the first reading")
    before = _duplicates(service_urls["gateway"])

    _resend_then_mark(api, pub, device.id, base=base, stored=1)

    records = records_for(bootstrap, "readings.energy", device.id, since=offsets)
    assert len(records) == 2, "the resend was produced to Kafka again"
    assert _duplicates(service_urls["gateway"]) == before + 1


def test_after_a_gateway_kill_a_redelivery_is_not_produced_again(
    api: httpx.Client, stack: Stack, stack_env, service_urls, device_factory, publisher_factory
) -> None:
    """The gateway's memory of what Kafka confirmed is read back from Kafka when it starts."""
    device = device_factory("energy")
    pub = publisher_factory(device)
    bootstrap = stack_env["KAFKA_BOOTSTRAP"]
    offsets = end_offsets(bootstrap, "readings.energy")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    pub.publish(_payload(base, 1.0)).wait_for_publish(30)
    wait_for(lambda: count_readings(api, device.id) == 1, timeout=60, what="the first reading")

    stack.kill("gateway")  # its keeper starts a new one
    gateway = service_urls["gateway"]

    def ready() -> bool:
        try:
            return httpx.get(f"{gateway}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=120, what="the gateway to be started again by its keeper")

    _resend_then_mark(api, pub, device.id, base=base, stored=1)

    records = records_for(bootstrap, "readings.energy", device.id, since=offsets)
    assert len(records) == 2, "the resend was produced to Kafka again after the restart"
    assert _duplicates(gateway) == 1
