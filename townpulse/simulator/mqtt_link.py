"""One MQTT connection per device, with its own credentials, tracking unacknowledged messages."""

from __future__ import annotations

import logging
import threading
import time
from enum import StrEnum
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from townpulse.simulator.provision import MqttCredentials

log = logging.getLogger(__name__)

QOS = 1
KEEPALIVE_S = 60
# Bounds memory if the broker goes away: beyond this, new readings of the device are dropped.
MAX_QUEUED = 2_000
MAX_INFLIGHT = 50
_AUTH_FAILURES = frozenset({"Bad user name or password", "Not authorized"})


class LinkState(StrEnum):
    """Where a device's connection stands."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    REFUSED = "refused"  # bad credentials: the caller must renew them
    STOPPED = "stopped"


class DeviceLink:
    """A paho client (and its network thread) publishing for a single device."""

    def __init__(self, device_id: str, creds: MqttCredentials, *, host: str, port: int) -> None:
        self.device_id = device_id
        self.topic = creds.topic
        self._host = host
        self._port = port
        self._cond = threading.Condition()
        self._state = LinkState.CONNECTING
        self._pending: set[int] = set()
        self._early_acks: set[int] = set()
        self.dropped = 0
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device_id, protocol=MQTTProtocolVersion.MQTTv311
        )
        self._client.username_pw_set(creds.username, creds.password)
        self._client.max_queued_messages_set(MAX_QUEUED)
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    @property
    def state(self) -> LinkState:
        """Current connection state."""
        with self._cond:
            return self._state

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        self._client.connect_async(self._host, self._port, keepalive=KEEPALIVE_S)
        self._client.loop_start()

    def wait_settled(self, deadline: float) -> LinkState:
        """Wait until connected or refused, or until `deadline` (time.monotonic)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._state is not LinkState.CONNECTING,
                timeout=max(0.0, deadline - time.monotonic()),
            )
            return self._state

    def publish(self, payload: bytes) -> bool:
        """Queue one QoS 1 message; False if dropped because the outgoing queue is full."""
        info = self._client.publish(self.topic, payload, qos=QOS)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self.dropped += 1
            return False
        # MQTT_ERR_NO_CONN still queues a QoS 1 message: paho sends it after reconnecting.
        with self._cond:
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
            else:
                self._pending.add(info.mid)
        return True

    def unacked(self) -> int:
        """Messages published but not yet acknowledged by the broker."""
        with self._cond:
            return len(self._pending)

    def wait_acked(self, deadline: float) -> int:
        """Wait until every message is acknowledged or `deadline`; return how many are not."""
        with self._cond:
            self._cond.wait_for(
                lambda: not self._pending, timeout=max(0.0, deadline - time.monotonic())
            )
            return len(self._pending)

    def stop(self) -> None:
        """Disconnect and join the network thread."""
        with self._cond:
            self._state = LinkState.STOPPED
            self._cond.notify_all()
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if not reason_code.is_failure:
            log.debug("%s connected", self.device_id)
            self._set_state(LinkState.CONNECTED)
            return
        if reason_code.getName() in _AUTH_FAILURES:
            # Retrying with the same password is pointless; stop paho's reconnect loop.
            log.warning("broker refused %s: %s", self.device_id, reason_code.getName())
            self._set_state(LinkState.REFUSED)
            client.disconnect()
            return
        log.warning("broker refused %s: %s; retrying", self.device_id, reason_code.getName())

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        with self._cond:
            if self._state is LinkState.CONNECTED:
                log.warning("%s disconnected (%s); reconnecting", self.device_id, reason_code)
                self._state = LinkState.CONNECTING
                self._cond.notify_all()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Any
    ) -> None:
        with self._cond:
            if mid in self._pending:
                self._pending.discard(mid)
            else:
                self._early_acks.add(mid)
            self._cond.notify_all()

    def _set_state(self, state: LinkState) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()
