"""Clearing the retained messages an older broker kept, on a Mosquitto of the test's own."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.broker_support import Broker
from tests.support import wait_for
from townpulse.stack.mosquitto import clear_retained

pytestmark = pytest.mark.integration


class Listener:
    """A subscriber that records (payload, retain flag) of what it is handed."""

    def __init__(self, port: int, topic: str, *, client_id: str, clean: bool = True) -> None:
        self.got: list[tuple[bytes, bool]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=mqtt.MQTTv311,
        )
        self.client.on_message = lambda _c, _u, m: self.got.append((m.payload, m.retain))
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _publish(port: int, topic: str, payload: bytes, *, retain: bool) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def test_retained_messages_are_cleared_and_stored_sessions_get_nothing(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    sock = broker.data / "sweep.sock"
    with broker.conf.open("a") as conf:
        conf.write(f"listener 0 {sock}\n")
    broker.start()
    try:
        topics = [f"sensors/waste/bin-{uuid.uuid4().hex[:6]}" for _ in range(3)]
        for topic in topics:
            _publish(broker.port, topic, b'{"fill_pct": 5}', retain=True)
        # The gateway's stored session, offline while the sweep runs.
        session = f"gw-{uuid.uuid4().hex[:6]}"
        offline = Listener(broker.port, "sensors/#", client_id=session, clean=False)
        wait_for(lambda: len(offline.got) == 3, timeout=10, what="the retained messages")
        offline.close()

        assert clear_retained(sock) == 3
        assert clear_retained(sock) == 0

        fresh = Listener(broker.port, "sensors/#", client_id="fresh")
        gateway = Listener(broker.port, "sensors/#", client_id=session, clean=False)
        try:
            # Published after both subscriptions: handed over after anything stored before.
            _publish(broker.port, topics[0], b"marker", retain=False)
            wait_for(lambda: fresh.got and gateway.got, timeout=10, what="the marker")
            assert fresh.got == [(b"marker", False)]
            # The empty messages that cleared the retained ones expired in its session.
            assert gateway.got == [(b"marker", False)]
        finally:
            fresh.close()
            gateway.close()
    finally:
        broker.remove()
