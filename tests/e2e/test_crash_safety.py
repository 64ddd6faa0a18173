"""Nothing lost, nothing doubled: SIGKILL the gateway and the storage service mid-stream."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from testing.prometheus import metric_value
from tests.support import count_readings, since_longest_range, wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.e2e

N = 5000


def _payload(base: datetime, i: int) -> str:
    ts = (base + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
    return json.dumps({"ts": ts, "energy_kwh": float(i)})


def test_sigkill_gateway_and_storage_loses_and_doubles_nothing(
    api: httpx.Client, stack: Stack, stack_env, device_factory, publisher_factory
) -> None:
    device = device_factory("energy")
    pub = publisher_factory(device)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    sent = threading.Semaphore(0)
    progress = {"i": 0}

    def publish_all() -> None:
        for i in range(N):
            pub.publish(_payload(base, i)).wait_for_publish(30)
            progress["i"] = i + 1
            sent.release()

    publisher = threading.Thread(target=publish_all, daemon=True)
    publisher.start()

    def reach(i: int) -> None:
        wait_for(lambda: progress["i"] >= i, timeout=120, interval=0.01, what=f"{i} published")

    reach(1000)
    stack.kill("gateway")
    reach(2000)  # the broker queues these for the gateway's persistent session
    stack.restart_service("gateway")
    reach(3000)
    stack.kill("storage")
    reach(4000)  # these wait in Kafka, offsets uncommitted
    stack.restart_service("storage")
    publisher.join(timeout=120)
    assert progress["i"] == N

    wait_for(
        lambda: count_readings(api, device.id) == N,
        timeout=180,
        what=f"exactly {N} readings after the crashes",
    )

    # Re-sent duplicates (same device, metric, timestamp): Kafka confirmed the first copies,
    # so the gateway acknowledges them without producing them again.
    gateway = stack_env["GATEWAY_URL"]

    def dropped() -> float:
        return metric_value(
            httpx.get(f"{gateway}/metrics").text,
            "townpulse_gateway_duplicate_uplinks_total",
            source="mqtt",
        )

    dup_before = dropped()
    for i in range(0, N, 10):
        pub.publish(_payload(base, i)).wait_for_publish(30)
    wait_for(
        lambda: dropped() >= dup_before + N // 10,
        timeout=120,
        what="the re-sent duplicates to be dropped by the gateway",
    )
    assert count_readings(api, device.id) == N
    values = [
        r["value"]
        for r in api.get(
            f"/v1/devices/{device.id}/readings",
            params={"start": since_longest_range(), "limit": N + 1},
        ).json()["items"]
    ]
    assert values == [float(i) for i in range(N)]
