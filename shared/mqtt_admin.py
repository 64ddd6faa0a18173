"""Provisioning MQTT identities through Mosquitto's dynamic security plugin.

The plugin is driven by MQTT messages on `$CONTROL/dynamic-security/v1`, so the operator API can
add and revoke devices at run time, also when the broker runs in another container.
Each device gets its own client (username = device id) and its own role that allows publishing
to its own topic only. Every client but the admin is bound to one MQTT client id, its username
(`client_id_of`): a device's credentials, taken from a sensor in the street, cannot connect
under the gateway's client id (which would disconnect the gateway: Mosquitto keeps one
connection per client id) or another device's. The stack's own names are reserved
(`reserved_reason`): no device may be registered under them.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
GATEWAY_ROLE = "gateway"
# `mosquitto_ctrl dynsec init` names the admin client and its role so.
ADMIN_USERNAME = "admin"

# Names the broker's service identities use or may use (usernames, client ids, roles): the
# operator API's admin, the gateways (`gateway-1`, `gateway-2`... one identity each), the
# stack's own tools (`townpulse-dynsec-...`, `townpulse-<instance>-...`), the broker itself.
# A device id equal to one of them, or made of one and a separator and anything, is refused
# at registration; compared without case, so that `Gateway-1` does not pass for another name
# in a listing either.
RESERVED_NAMES = ("admin", "gateway", "townpulse", "mosquitto", "dynsec", "system", "root")
_RESERVED = re.compile(rf"^(?:{'|'.join(RESERVED_NAMES)})(?:[-_.].*)?$", re.IGNORECASE | re.DOTALL)
# The gateways' usernames and client ids: `gateway-<n>`, which their instance names are.
_GATEWAY_IDENTITY = re.compile(r"^gateway-[0-9]+$")


def reserved_reason(name: str) -> str | None:
    """Why a device may not be called `name` (a name the stack's MQTT identities use), or None.

    >>> reserved_reason("gateway-1")
    "'gateway-1' is reserved for the stack's own MQTT identities (admin, gateway, townpulse, ...)"
    >>> reserved_reason("gateways-bin-3") is None, reserved_reason("bin-admin") is None
    (True, True)
    """
    if _RESERVED.match(name):
        return (
            f"{name!r} is reserved for the stack's own MQTT identities"
            f" ({', '.join(RESERVED_NAMES[:3])}, ...)"
        )
    return None


def client_id_of(username: str) -> str:
    """The one MQTT client id a client may connect with: its username (a device's id)."""
    return username


def gateway_username(instance: int) -> str:
    """The MQTT identity of gateway instance `instance` (1, 2...), also its client id."""
    return f"gateway-{instance}"


class DynSecError(RuntimeError):
    pass


def device_role(device_id: str) -> str:
    return f"device-{device_id}"


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    topic: str
    password: str


# Below its own topic, a device that publishes its own JSON (Tasmota's `tele/SENSOR` with its
# FullTopic set to the device's topic, Shelly Gen2's `status/switch:0` with its topic prefix set
# to it) may use these, which the gateway subscribes to and maps with the device's profile
# (services/gateway/ingest/mapped.py). Nothing else: Tasmota's STATE and LWT, Shelly's events
# are dropped by the broker.
OWN_FORMAT_SUBTOPICS = ("tele/SENSOR", "status/+")


def device_topics(topic: str) -> list[str]:
    """The topics a device may publish on: its own, and its own JSON's below it.

    >>> device_topics("sensors/energy/plug-1")
    ['sensors/energy/plug-1', 'sensors/energy/plug-1/tele/SENSOR', 'sensors/energy/plug-1/status/+']
    """
    return [topic, *(f"{topic}/{sub}" for sub in OWN_FORMAT_SUBTOPICS)]


def _create_device_commands(device: DeviceIdentity) -> list[dict[str, Any]]:
    # A role per device, not one shared role with a `%u` ACL: Mosquitto 2.0's dynamic security
    # plugin does not substitute %u/%c (https://github.com/eclipse-mosquitto/mosquitto/issues/2222,
    # added in 2.1: https://github.com/eclipse-mosquitto/mosquitto/issues/3191), and the stack
    # still runs on a machine's 2.0 when no 2.1 was built. On 2.1 the role costs little: the
    # plugin saves its file once per command message (bench/registration.py).
    role = device_role(device.device_id)
    return [
        {
            "command": "createRole",
            "rolename": role,
            "acls": [
                {"acltype": "publishClientSend", "topic": topic, "priority": 0, "allow": True}
                for topic in device_topics(device.topic)
            ],
        },
        {
            "command": "createClient",
            "username": device.device_id,
            "clientid": client_id_of(device.device_id),
            "password": device.password,
            "roles": [{"rolename": role}],
        },
    ]


def _delete_device_commands(device_id: str) -> list[dict[str, Any]]:
    # deleteClient also disconnects a connected client with that username.
    return [
        {"command": "deleteClient", "username": device_id},
        {"command": "deleteRole", "rolename": device_role(device_id)},
    ]


GATEWAY_ACLS: list[dict[str, Any]] = [
    {"acltype": "subscribePattern", "topic": "sensors/#", "priority": 0, "allow": True},
    {"acltype": "subscribePattern", "topic": "$share/+/sensors/#", "priority": 0, "allow": True},
    {"acltype": "publishClientReceive", "topic": "sensors/#", "priority": 0, "allow": True},
]


def _acl_key(acl: dict[str, Any]) -> tuple[str, str, int, bool]:
    return (acl["acltype"], acl["topic"], int(acl.get("priority", 0)), bool(acl.get("allow")))


def _acl_repair(rolename: str, have: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Commands that make a role's ACLs exactly the gateway's (removeRoleACL and addRoleACL,
    which Mosquitto 2.0's plugin has too; 2.1's modifyRole could replace them at once).

    >>> _acl_repair("gateway", GATEWAY_ACLS)
    []
    >>> [c["command"] for c in _acl_repair("gateway", [{"acltype": "publishClientSend",
    ...     "topic": "#", "allow": True}])]
    ['removeRoleACL', 'addRoleACL', 'addRoleACL', 'addRoleACL']
    """
    want = {_acl_key(a) for a in GATEWAY_ACLS}
    got = {_acl_key(a) for a in have}
    remove = [
        {"command": "removeRoleACL", "rolename": rolename, "acltype": t, "topic": topic}
        for (t, topic, _, _) in sorted(got - want)
    ]
    add = [
        {"command": "addRoleACL", "rolename": rolename, **a}
        for a in GATEWAY_ACLS
        if _acl_key(a) not in got
    ]
    return remove + add


# Mosquitto 2.0.11's plugin rewrites its whole JSON file after every command, so one command
# costs time proportional to the number of clients and roles (about 8 ms per 1,000 devices on
# 2 cores); 2.1 saves once per message. The broker serves nobody else while it runs one
# message's commands: the timeout grows with the batch instead of cutting a long batch short (a
# late answer would then be taken for the next request's).
_TIMEOUT_BASE_S = 30.0
_TIMEOUT_PER_COMMAND_S = 1.0
_REPAIR_BATCH = 500
_PAGE = 1000


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
        self._lock = threading.Lock()  # one request at a time
        # The correlation of the request waiting for its response: the broker sends every
        # response to every admin session (the API's, the tests', the stack's tools'), so an
        # answer is ours only if it echoes our `correlationData`.
        self._expect: str | None = None
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
            body = json.loads(msg.payload)
            first = body["responses"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            return  # nobody's answer, or not one we can tell is ours
        expected = self._expect
        if expected is None or not str(first.get("correlationData", "")).startswith(expected):
            return  # another admin session's answer
        self._response = body
        self._got.set()

    def execute(
        self, commands: list[dict[str, Any]], *, timeout: float = 10
    ) -> list[dict[str, Any]]:
        """Run commands; returns one response per command (each may hold an `error`)."""
        if not commands:
            # The plugin answers an empty list with no response that could carry our
            # correlation: nothing to wait for.
            return []
        with self._lock:
            self._got.clear()
            self._response = None
            token = f"{uuid.uuid4().hex}:"
            self._expect = token
            tagged = [{**c, "correlationData": f"{token}{i}"} for i, c in enumerate(commands)]
            info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
            info.wait_for_publish(timeout)
            if not self._got.wait(timeout):
                raise DynSecError("no answer from the dynamic security plugin")
            assert self._response is not None
            responses: list[dict[str, Any]] = self._response.get("responses", [])
            return responses

    def check(
        self,
        commands: list[dict[str, Any]],
        *,
        ok_errors: tuple[str, ...] = (),
        excusable: int | None = None,
    ) -> None:
        """Run commands; any error is raised, except `ok_errors` among the first `excusable`
        commands (all of them by default). Fewer answers than commands is an error too: the
        commands without one may not have run."""
        responses = self.execute(commands)
        if len(responses) != len(commands):
            raise DynSecError(f"{len(responses)} answers to {len(commands)} commands")
        for i, (cmd, resp) in enumerate(zip(commands, responses, strict=True)):
            err = resp.get("error")
            if not err:
                continue
            if not ((excusable is None or i < excusable) and any(e in err for e in ok_errors)):
                raise DynSecError(f"{cmd['command']}: {err}")

    # ---- devices -----------------------------------------------------------------------------

    def add_device(self, *, device_id: str, topic: str, password: str) -> None:
        # Idempotent: a half-done earlier attempt (crash between two commands) is repaired. One
        # message, deletions first: the plugin runs a message's commands in order and saves its
        # file once per message on 2.1 (twice as many saves in two messages).
        deletes = _delete_device_commands(device_id)
        creates = _create_device_commands(
            DeviceIdentity(device_id=device_id, topic=topic, password=password)
        )
        self.check([*deletes, *creates], ok_errors=("not found",), excusable=len(deletes))

    def add_devices(self, devices: Sequence[DeviceIdentity]) -> dict[str, str]:
        """Provision many devices in one command message; returns the refused ones' reasons.

        A device the broker already knows (left over by an interrupted registration) is
        deleted and created again, in a second message, so its new password holds.
        """
        commands = [c for d in devices for c in _create_device_commands(d)]
        responses = self._execute_scaled(commands)
        refused: dict[str, str] = {}
        leftovers: list[DeviceIdentity] = []
        for i, device in enumerate(devices):
            errors = [r.get("error") for r in responses[2 * i : 2 * i + 2]]
            if len(errors) < 2:
                refused[device.device_id] = "no answer from the broker"
            elif any(e and "already exists" in e for e in errors):
                leftovers.append(device)
            elif any(errors):
                refused[device.device_id] = "; ".join(e for e in errors if e)
        if leftovers:
            repair = [c for d in leftovers for c in _delete_device_commands(d.device_id)]
            repair += [c for d in leftovers for c in _create_device_commands(d)]
            answers = self._execute_scaled(repair)[2 * len(leftovers) :]
            for i, device in enumerate(leftovers):
                errors = [r.get("error") for r in answers[2 * i : 2 * i + 2]]
                if len(errors) < 2 or any(errors):
                    refused[device.device_id] = "; ".join(e for e in errors if e) or "no answer"
        if refused:
            # Half-made identities (role made, client refused) must not linger.
            self.execute(
                [c for d in refused for c in _delete_device_commands(d)],
                timeout=_TIMEOUT_BASE_S + _TIMEOUT_PER_COMMAND_S * 2 * len(refused),
            )
        return refused

    def _execute_scaled(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        timeout = _TIMEOUT_BASE_S + _TIMEOUT_PER_COMMAND_S * len(commands)
        return self.execute(commands, timeout=timeout)

    def set_device_password(self, *, device_id: str, password: str) -> None:
        self.check([{"command": "setClientPassword", "username": device_id, "password": password}])

    def remove_device(self, device_id: str) -> None:
        self.check(_delete_device_commands(device_id), ok_errors=("not found",))

    # ---- service identities --------------------------------------------------------------------

    def ensure_gateways(self, *, instances: int, password: str) -> None:
        """The gateways' identities (`gateway-1`... each bound to its own client id, one role
        and one password between them), created or repaired; the bindings of every client
        re-asserted (`repair`)."""
        # The role first: on a fresh broker, a client naming a role that does not exist yet is
        # refused ("Role not found").
        self._ensure_gateway_role()
        for n in range(1, instances + 1):
            username = gateway_username(n)
            self.check(
                [
                    {
                        "command": "createClient",
                        "username": username,
                        "clientid": client_id_of(username),
                        "password": password,
                        "roles": [{"rolename": GATEWAY_ROLE}],
                    }
                ],
                ok_errors=("already exists",),
            )
            # The password may have been regenerated (secrets dir wiped): make it current.
            self.set_password(username=username, password=password)
        # The single unbound `gateway` identity of earlier versions: the instances' own replace
        # it, and its name stays reserved.
        self.check(
            [{"command": "deleteClient", "username": GATEWAY_ROLE}], ok_errors=("not found",)
        )
        self.repair()

    def _ensure_gateway_role(self) -> None:
        role = self._get("getRole", rolename=GATEWAY_ROLE)
        if role is None:
            self.check([{"command": "createRole", "rolename": GATEWAY_ROLE, "acls": GATEWAY_ACLS}])
        else:
            self.check(_acl_repair(GATEWAY_ROLE, role.get("role", {}).get("acls", [])))

    def repair(self) -> None:
        """Re-assert what a tampered or older broker may have lost: the gateway role's ACLs,
        the gateways' role, and every client's binding to its own client id (devices
        registered before bindings existed are bound here). Changes only what differs: each
        change disconnects that client."""
        self._ensure_gateway_role()
        fixes: list[dict[str, Any]] = []
        for client in self._clients():
            username = client["username"]
            if username == ADMIN_USERNAME:
                # Left unbound: it may rewrite every binding anyway, and the stack's tools
                # (the API, `townpulse bootstrap`, benchmarks) hold admin connections at the
                # same time, which one bound client id would make disconnect each other.
                continue
            if client.get("clientid") != client_id_of(username):
                fixes.append(
                    {
                        "command": "setClientId",
                        "username": username,
                        "clientid": client_id_of(username),
                    }
                )
            roles = [r["rolename"] for r in client.get("roles", [])]
            if not _GATEWAY_IDENTITY.match(username):
                # A device holding a service's role would read the whole town's messages.
                fixes += [
                    {"command": "removeClientRole", "username": username, "rolename": r}
                    for r in roles
                    if r in (GATEWAY_ROLE, ADMIN_USERNAME)
                ]
            else:
                fixes += [
                    {"command": "removeClientRole", "username": username, "rolename": r}
                    for r in roles
                    if r != GATEWAY_ROLE
                ]
                if GATEWAY_ROLE not in roles:
                    fixes.append(
                        {"command": "addClientRole", "username": username, "rolename": GATEWAY_ROLE}
                    )
                fixes += [
                    {"command": "removeClientGroup", "username": username, "groupname": g}
                    for g in (g["groupname"] for g in client.get("groups", []))
                ]
        # In messages of a few hundred commands: an upgrade binds every device registered
        # before, and the broker serves nobody else while it runs one message.
        for start in range(0, len(fixes), _REPAIR_BATCH):
            batch = fixes[start : start + _REPAIR_BATCH]
            answers = self._execute_scaled(batch)
            errors = [a["error"] for a in answers if a.get("error")]
            if errors or len(answers) != len(batch):
                raise DynSecError(f"repairing identities: {errors[:3] or 'answers missing'}")

    def _clients(self) -> list[dict[str, Any]]:
        """Every client, with its client id, roles and groups, a page at a time (one answer
        for ten thousand devices would be megabytes)."""
        clients: list[dict[str, Any]] = []
        while True:
            page = self._get("listClients", verbose=True, count=_PAGE, offset=len(clients)) or {}
            got = page.get("clients", [])
            clients += got
            if len(got) < _PAGE:
                return clients

    def _get(self, command: str, **args: Any) -> dict[str, Any] | None:
        """A read command's `data`, or None when what it names does not exist."""
        (answer,) = self.execute([{"command": command, **args}])
        if err := answer.get("error"):
            if "not found" in err:
                return None
            raise DynSecError(f"{command}: {err}")
        data: dict[str, Any] = answer.get("data", {})
        return data

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
