"""The gateway's MQTT session across a restart of the broker.

A broker of its own (the stack's Mosquitto binary, persistence on, a free port) so that it can be
restarted without disturbing the stack: every message the broker acknowledged to a device, before,
during or right after its restart, must reach the gateway's source.
"""

from __future__ import annotations

import asyncio
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from services.gateway.mqtt_source import Incoming, MqttSource
from services.gateway.settings import GatewaySettings
from tests.broker_support import Broker
from tests.support import until

pytestmark = pytest.mark.integration


class Device:
    """Publishes numbered QoS 1 messages and remembers which ones the broker acknowledged."""

    def __init__(self, port: int) -> None:
        self.acked: set[int] = set()
        self._mids: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="device-1", protocol=mqtt.MQTTv311
        )
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run)

    def _on_publish(self, c: mqtt.Client, u: object, mid: int, rc: object, p: object) -> None:
        with self._lock:
            if mid in self._mids:
                self.acked.add(self._mids.pop(mid))

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            if self.client.is_connected():
                info = self.client.publish("sensors/energy/meter-1", str(n), qos=1)
                with self._lock:
                    self._mids[info.mid] = n
                n += 1
            time.sleep(0.01)

    def start(self) -> None:
        self._thread.start()

    def pending(self) -> int:
        with self._lock:
            return len(self._mids)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + 10
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.05)  # the last PUBACKs
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("restart_gap_s", [0.0, 5.0])
async def test_every_acknowledged_message_reaches_the_gateway_across_a_broker_restart(
    broker: Broker, restart_gap_s: float
) -> None:
    received: set[int] = set()
    source: MqttSource

    def on_message(msg: Incoming) -> None:
        received.add(int(msg.payload))
        source.ack(msg)

    source = MqttSource(
        host="127.0.0.1",
        port=broker.port,
        client_id="gateway-test",
        username="",
        password="",
        share_group="",
        keepalive_s=GatewaySettings(dev_mode=True).mqtt_keepalive_s,
        on_message=on_message,
        loop=asyncio.get_running_loop(),
    )
    source.start()
    device = Device(broker.port)
    try:
        await until(lambda: source.connected, within_s=10, what="the gateway's connection")
        device.start()
        await until(lambda: len(device.acked) > 150, within_s=20, what="messages before")
        broker.stop()
        await asyncio.sleep(restart_gap_s)  # the outage itself
        broker.start()
        # The device reconnects and publishes while the gateway reconnects, and after.
        before = len(device.acked)
        await until(lambda: len(device.acked) > before + 300, within_s=30, what="messages after")
        device.stop()
        await until(lambda: device.acked <= received, within_s=20, what="every message")
    except AssertionError:
        missing = sorted(device.acked - received)
        raise AssertionError(
            f"{len(missing)} acknowledged messages never reached the gateway: {missing[:10]}"
        ) from None
    finally:
        source.stop()


async def test_a_burst_from_pahos_thread_arrives_whole_and_in_order_with_few_wakeups() -> None:
    loop = asyncio.get_running_loop()
    received: list[int] = []
    source = MqttSource(
        host="127.0.0.1",
        port=1,
        client_id="gateway-test",
        username="",
        password="",
        share_group="",
        keepalive_s=GatewaySettings(dev_mode=True).mqtt_keepalive_s,
        on_message=lambda msg: received.append(int(msg.payload)),
        loop=loop,
    )
    wakeups = 0
    schedule = loop.call_soon_threadsafe

    def counting(*args: object) -> asyncio.Handle:
        nonlocal wakeups
        wakeups += 1
        return schedule(*args)  # type: ignore[arg-type]

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
    n = 20_000
    try:

        def paho_thread() -> None:
            for i in range(n):
                msg = mqtt.MQTTMessage(mid=i % 65535 + 1, topic=b"sensors/energy/meter-1")
                msg.payload = str(i).encode()
                msg.qos = 1
                source._on_message(source._client, None, msg)

        thread = threading.Thread(target=paho_thread)
        thread.start()
        await until(lambda: len(received) == n, within_s=30, what="every message")
        thread.join()
    finally:
        del loop.call_soon_threadsafe
    assert received == list(range(n))
    # One wake-up per message is what this replaced; a burst must share them.
    assert wakeups < n / 2, wakeups


def _publish(port: int, payload: bytes, *, retain: bool) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish("sensors/waste/bin-1", payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


async def test_a_message_from_the_brokers_retained_store_is_dropped(broker: Broker) -> None:
    # The stack's broker refuses retained publishes; one an older broker kept must still not
    # be ingested (again at every reconnect).
    _publish(broker.port, b"retained", retain=True)
    received: list[bytes] = []

    def on_message(msg: Incoming) -> None:
        received.append(msg.payload)
        source.ack(msg)

    source = MqttSource(
        host="127.0.0.1",
        port=broker.port,
        client_id="gateway-test",
        username="",
        password="",
        share_group="",
        keepalive_s=GatewaySettings(dev_mode=True).mqtt_keepalive_s,
        on_message=on_message,
        loop=asyncio.get_running_loop(),
    )
    source.start()
    try:
        await until(lambda: source.connected, within_s=10, what="the gateway's connection")
        # Published once subscribed: it arrives after the retained one would have.
        await until(
            lambda: _publish(broker.port, b"live", retain=False) or received,
            within_s=10,
            what="the live message",
        )
        assert received[0] == b"live"
        assert b"retained" not in received
    finally:
        source.stop()
