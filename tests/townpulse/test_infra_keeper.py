"""The infrastructure of the local stack is kept like the services: Kafka, killed, comes back by
itself (as after a full disk, where it shuts itself down for good), and the stack is ready again;
`townpulse down`-style stops are not fought by the keeper."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from tests.support import wait_for
from townpulse.stack import Stack
from townpulse.stack.config import SERVICES
from townpulse.stack.processes import keeper, port_open

pytestmark = pytest.mark.integration


def _every_service_ready(stack: Stack) -> bool:
    for spec in SERVICES:
        url = f"http://127.0.0.1:{stack.services.port(spec)}/readyz"
        try:
            if httpx.get(url, timeout=2).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    return True


def test_a_killed_kafka_is_started_again_by_its_keeper(stack: Stack) -> None:
    old = stack.pid("kafka")
    assert old is not None
    assert stack.pid(keeper("kafka")) is not None, "Kafka runs without a keeper"
    os.kill(old, signal.SIGKILL)

    wait_for(
        lambda: (new := stack.pid("kafka")) is not None and new != old,
        timeout=60,
        what="a new Kafka started by its keeper",
    )
    wait_for(lambda: port_open(stack.s.kafka_port), timeout=120, what="Kafka's port")
    wait_for(lambda: _every_service_ready(stack), timeout=180, what="every service ready again")
    assert stack.services.restarts("kafka")["restarts"] >= 1


def test_a_stopped_mosquitto_stays_stopped_until_started(stack: Stack) -> None:
    """The stack's own stop (down, a fault of the benchmark) stops the keeper first."""
    assert stack.pid(keeper("mosquitto")) is not None
    stack.stop("mosquitto")
    try:
        assert stack.pid("mosquitto") is None
        assert stack.pid(keeper("mosquitto")) is None
        assert not port_open(stack.s.mqtt_port)
    finally:
        stack.start_mosquitto()
    assert stack.pid(keeper("mosquitto")) is not None
    wait_for(lambda: _every_service_ready(stack), timeout=180, what="every service ready again")
