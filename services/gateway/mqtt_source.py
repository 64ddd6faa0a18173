"""The MQTT side of the gateway: a persistent subscription with manual acknowledgement.

paho-mqtt runs its network loop in a thread; messages are handed to the asyncio loop, and the
PUBACK for a message is sent only when the asyncio side says Kafka has it. If the connection
drops before that, the broker redelivers the message on the next connection (persistent session,
clean_session=False), so an ack from an older connection is never sent: its message id may
already name another message.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shared.topics import MQTT_SUBSCRIPTION

log = logging.getLogger(__name__)
# How soon a refused subscription is asked for again.
RESUBSCRIBE_S = 5.0


@dataclass(slots=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_at: datetime
    received_mono: float = field(default_factory=time.monotonic)
    # The connection it came on, to acknowledge it there: TownPulse's broker or a network
    # server's (then `integration` names the integration).
    origin: MqttSource | None = None
    integration: str | None = None


class MqttSource:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        username: str,
        password: str,
        share_group: str,
        keepalive_s: int,
        on_message: Callable[[Incoming], None],
        loop: asyncio.AbstractEventLoop,
        subscriptions: tuple[str, ...] = (MQTT_SUBSCRIPTION,),
        integration: str | None = None,
        tls_ca: str | None = None,
        tls: bool = False,
        on_state: Callable[[bool, str | None], None] | None = None,
        persistent: bool = True,
    ) -> None:
        self._host, self._port = host, port
        self._keepalive_s = keepalive_s
        self.integration = integration
        self._on_state = on_state

        def share(topic: str) -> str:
            return f"$share/{share_group or 'gateways'}/{topic}"

        self._subscriptions = [share(t) if share_group else t for t in subscriptions]
        # The session is persistent: a subscription of the other kind, left by an earlier
        # configuration, would deliver every message a second time.
        self._stale_subscriptions = [t if share_group else share(t) for t in subscriptions]
        self._deliver = on_message
        self._loop = loop
        # Messages cross from paho's thread in bursts: one wake-up of the event loop per burst,
        # not per message (each wake-up writes to the loop's self-pipe: 11 % of the gateway's
        # samples at 3,000 msg/s, docs/performance.md).
        self._inbox: deque[Incoming] = deque()
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._lock = threading.Lock()
        self._generation = 0
        self.connected = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            # A persistent session: QoS 1 messages that arrive while this gateway is down (or
            # that it received but never acknowledged) wait for it at the broker.
            clean_session=not persistent,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if username:
            self._client.username_pw_set(username, password)
        if tls or tls_ca:
            # The network server's broker: its CA as the town pasted it (PEM), or the system's.
            context = ssl.create_default_context(cadata=tls_ca or None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._client.tls_set_context(context)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._resubscribe: threading.Timer | None = None

    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=self._keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        if self._resubscribe is not None:
            self._resubscribe.cancel()
        self._client.disconnect()
        self._client.loop_stop()

    def ack(self, msg: Incoming) -> bool:
        """PUBACK a message, unless the connection it came on is gone (it will be redelivered)."""
        with self._lock:
            if msg.generation != self._generation or not self.connected:
                return False
            self._client.ack(msg.mid, msg.qos)
            return True

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            log.error("MQTT connection refused: %s", rc, extra={"integration": self.integration})
            if self._on_state is not None:
                self._on_state(False, f"connection refused: {rc}")
            return
        with self._lock:
            self._generation += 1
            self.connected = True
        self._subscribe()
        if flags.session_present:
            client.unsubscribe(self._stale_subscriptions)
        if self._on_state is not None:
            self._on_state(True, None)
        log.info(
            "MQTT connected",
            extra={
                "subscription": self._subscriptions,
                "session_present": flags.session_present,
                "integration": self.integration,
            },
        )

    def _subscribe(self) -> None:
        with self._lock:
            if not self.connected:
                return  # the next connection subscribes
        self._client.subscribe([(t, 1) for t in self._subscriptions])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: list[Any], props: Any
    ) -> None:
        refused = [str(c) for c in codes if c.is_failure]
        if not refused:
            if self._on_state is not None:
                self._on_state(True, None)
            return
        # The broker refused a subscription (its ACL said no when this connection subscribed:
        # a role being repaired, a hand edit). Connected but deaf, the gateway would hear
        # nothing until its next reconnect, which may never come: ask again until it is let.
        log.error(
            "MQTT subscription refused (%s): asking again in %.0f s",
            ", ".join(refused),
            RESUBSCRIBE_S,
            extra={"integration": self.integration},
        )
        if self._on_state is not None:
            self._on_state(False, f"subscription refused: {', '.join(refused)}")
        timer = threading.Timer(RESUBSCRIBE_S, self._subscribe)
        timer.daemon = True
        self._resubscribe = timer
        timer.start()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        with self._lock:
            self.connected = False
        if self._on_state is not None:
            self._on_state(False, f"disconnected: {rc}")
        log.warning("MQTT disconnected: %s", rc, extra={"integration": self.integration})

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and self.integration is None:
            # From the town's broker's retained store, not from a device just now: the broker
            # refuses retained publishes (retain_available false), so this one is left from
            # before, and ingesting it would count a reading again at every reconnect.
            client.ack(msg.mid, msg.qos)
            log.warning("a retained message was dropped (left from before retain was refused)")
            return
        incoming = Incoming(
            topic=msg.topic,
            payload=bytes(msg.payload),
            mid=msg.mid,
            qos=msg.qos,
            generation=self._generation,
            received_at=datetime.now(UTC),
            origin=self,
            integration=self.integration,
        )
        self._inbox.append(incoming)
        with self._wake_lock:
            if self._wake_pending:
                return  # the loop has yet to drain: it will find this one too
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """On the event loop: deliver everything received so far, in order."""
        # Cleared before draining: a message appended after this schedules a new wake-up, one
        # appended before it is delivered below.
        with self._wake_lock:
            self._wake_pending = False
        while self._inbox:
            self._deliver(self._inbox.popleft())
