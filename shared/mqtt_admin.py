"""Provisioning MQTT identities through Mosquitto's dynamic security plugin.

The plugin is driven by MQTT messages on `$CONTROL/dynamic-security/v1`, so the operator API can
add and revoke devices at run time, also when the broker runs in another container.
Each device gets its own client (username = device id) and its own role that allows publishing
to its own topic only.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
GATEWAY_ROLE = "gateway"


class DynSecError(RuntimeError):
    pass


def device_role(device_id: str) -> str:
    return f"device-{device_id}"


class DynSecClient:
    """A blocking request/response client for the dynamic security API (use via a thread)."""

    def __init__(self, *, host: str, port: int, username: str, password: str) -> None:
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"townpulse-dynsec-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        self._client.username_pw_set(username, password)
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._host, self._port = host, port
        self._lock = threading.Lock()  # one request at a time: responses carry no correlation
        self._connected = threading.Event()
        self._response: dict[str, Any] | None = None
        self._got = threading.Event()

    def connect(self, timeout: float = 10) -> None:
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            self.close()
            raise DynSecError("could not connect to the broker as the dynsec admin")

    def is_connected(self) -> bool:
        return bool(self._client.is_connected())

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc == 0:
            client.subscribe(RESPONSE_TOPIC, qos=1)
            self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._response = json.loads(msg.payload)
        except ValueError:
            self._response = {"responses": [{"error": "unreadable response"}]}
        self._got.set()

    def execute(
        self, commands: list[dict[str, Any]], *, timeout: float = 10
    ) -> list[dict[str, Any]]:
        """Run commands; returns one response per command (each may hold an `error`)."""
        with self._lock:
            self._got.clear()
            self._response = None
            info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)
            info.wait_for_publish(timeout)
            if not self._got.wait(timeout):
                raise DynSecError("no answer from the dynamic security plugin")
            assert self._response is not None
            responses: list[dict[str, Any]] = self._response.get("responses", [])
            return responses

    def check(self, commands: list[dict[str, Any]], *, ok_errors: tuple[str, ...] = ()) -> None:
        for cmd, resp in zip(commands, self.execute(commands), strict=False):
            err = resp.get("error")
            if err and not any(e in err for e in ok_errors):
                raise DynSecError(f"{cmd['command']}: {err}")

    # ---- devices -----------------------------------------------------------------------------

    def add_device(self, *, device_id: str, topic: str, password: str) -> None:
        role = device_role(device_id)
        # Idempotent: a half-done earlier attempt (crash between two commands) is repaired.
        self.check(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": role},
            ],
            ok_errors=("not found",),
        )
        self.check(
            [
                {
                    "command": "createRole",
                    "rolename": role,
                    "acls": [
                        {
                            "acltype": "publishClientSend",
                            "topic": topic,
                            "priority": 0,
                            "allow": True,
                        },
                    ],
                },
                {
                    "command": "createClient",
                    "username": device_id,
                    "password": password,
                    "roles": [{"rolename": role}],
                },
            ]
        )

    def set_device_password(self, *, device_id: str, password: str) -> None:
        self.check([{"command": "setClientPassword", "username": device_id, "password": password}])

    def remove_device(self, device_id: str) -> None:
        # deleteClient also disconnects a connected client with that username.
        self.check(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": device_role(device_id)},
            ],
            ok_errors=("not found",),
        )

    # ---- service identities --------------------------------------------------------------------

    def ensure_gateway(self, *, username: str, password: str) -> None:
        self.check(
            [
                {
                    "command": "createRole",
                    "rolename": GATEWAY_ROLE,
                    "acls": [
                        {
                            "acltype": "subscribePattern",
                            "topic": "sensors/#",
                            "priority": 0,
                            "allow": True,
                        },
                        {
                            "acltype": "subscribePattern",
                            "topic": "$share/+/sensors/#",
                            "priority": 0,
                            "allow": True,
                        },
                        {
                            "acltype": "publishClientReceive",
                            "topic": "sensors/#",
                            "priority": 0,
                            "allow": True,
                        },
                    ],
                },
            ],
            ok_errors=("already exists",),
        )
        self.check(
            [
                {
                    "command": "createClient",
                    "username": username,
                    "password": password,
                    "roles": [{"rolename": GATEWAY_ROLE}],
                }
            ],
            ok_errors=("already exists",),
        )
        # The password may have been regenerated (secrets dir wiped): make it current.
        self.set_password(username=username, password=password)

    def set_password(self, *, username: str, password: str) -> None:
        self.check([{"command": "setClientPassword", "username": username, "password": password}])

    def lock_down_defaults(self) -> None:
        """Deny by default: a client may only do what its roles allow."""
        self.check(
            [
                {
                    "command": "setDefaultACLAccess",
                    "acls": [
                        {"acltype": "publishClientSend", "allow": False},
                        {"acltype": "publishClientReceive", "allow": True},
                        {"acltype": "subscribe", "allow": False},
                        {"acltype": "unsubscribe", "allow": True},
                    ],
                },
            ]
        )
