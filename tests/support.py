"""Helpers for tests: polling with a deadline, MQTT publishing (Prometheus samples: testing/)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def wait_for(
    cond: Callable[[], Any], *, timeout: float = 30, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll `cond` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


async def until(
    cond: Callable[[], Any],
    *,
    within_s: float = 30,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """wait_for for async tests: the event loop keeps running while `cond` is polled. `cond`
    may be a coroutine function (a condition read from the database)."""
    deadline = time.monotonic() + within_s
    while not (last := await _value(cond())):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(interval)
    return last


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


@dataclass
class RegisteredDevice:
    id: str
    domain: str
    username: str
    password: str
    topic: str
    host: str
    port: int


class Publisher:
    """A device's own MQTT connection (paho), publishing QoS 1 and waiting for each PUBACK."""

    def __init__(self, device: RegisteredDevice) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            # The broker binds a device's credentials to one client id, its id (README).
            client_id=device.id,
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(device.username, device.password)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.device = device
        rc = self.client.connect(device.host, device.port, keepalive=30)
        assert rc == 0
        self.client.loop_start()
        wait_for(self.client.is_connected, timeout=10, what="MQTT connection")

    def publish(self, payload: bytes | str, *, topic: str | None = None) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic or self.device.topic, payload, qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def since_longest_range() -> str:
    """The earliest `start` the API accepts with the default end (its range cap is 400 days)."""
    return (datetime.now(UTC) - timedelta(days=399)).isoformat()


def count_readings(api: httpx.Client, device_id: str, **params: Any) -> int:
    r = api.get(
        f"/v1/devices/{device_id}/readings",
        params={"start": since_longest_range(), "limit": 50_000, **params},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["truncated"]
    return len(body["items"])
