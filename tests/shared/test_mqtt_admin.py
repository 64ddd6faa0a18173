"""DynSecClient's reading of the plugin's answers (the broker itself: the API tests)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.mqtt_admin import DeviceIdentity, DynSecClient, DynSecError

pytestmark = pytest.mark.unit


class ScriptedDynSec(DynSecClient):
    """Answers each message with errors by (command, name); records what was sent."""

    def __init__(self, errors: dict[tuple[str, str], str]) -> None:
        super().__init__(host="unused", port=0, username="u", password="p")
        self.errors = errors
        self.sent: list[list[dict[str, Any]]] = []

    def execute(
        self, commands: list[dict[str, Any]], *, timeout: float = 10
    ) -> list[dict[str, Any]]:
        self.sent.append(commands)
        answers = []
        for c in commands:
            name = c.get("username") or c.get("rolename") or ""
            err = self.errors.pop((c["command"], name), None)
            answers.append({"command": c["command"], **({"error": err} if err else {})})
        return answers


def _devices(*ids: str) -> list[DeviceIdentity]:
    return [DeviceIdentity(device_id=i, topic=f"sensors/waste/{i}", password="pw") for i in ids]


def test_one_message_for_a_whole_batch() -> None:
    client = ScriptedDynSec({})
    assert client.add_devices(_devices("a", "b", "c")) == {}
    assert len(client.sent) == 1
    assert [c["command"] for c in client.sent[0]] == ["createRole", "createClient"] * 3


def test_a_refused_device_is_reported_and_cleaned_up_others_kept() -> None:
    client = ScriptedDynSec({("createClient", "b"): "Invalid password"})
    assert client.add_devices(_devices("a", "b", "c")) == {"b": "Invalid password"}
    assert client.sent[-1] == [
        {"command": "deleteClient", "username": "b"},
        {"command": "deleteRole", "rolename": "device-b"},
    ]


def test_a_leftover_identity_is_deleted_and_made_again() -> None:
    client = ScriptedDynSec({("createClient", "b"): "Client already exists"})
    assert client.add_devices(_devices("a", "b")) == {}
    repair = [(c["command"], c.get("username") or c.get("rolename")) for c in client.sent[1]]
    assert repair == [
        ("deleteClient", "b"),
        ("deleteRole", "device-b"),
        ("createRole", "device-b"),
        ("createClient", "b"),
    ]


def test_a_short_answer_refuses_the_unanswered_devices() -> None:
    class Short(ScriptedDynSec):
        def execute(self, commands, *, timeout=10):  # type: ignore[no-untyped-def]
            return super().execute(commands, timeout=timeout)[:2]

    client = Short({})
    assert client.add_devices(_devices("a", "b")) == {"b": "no answer from the broker"}


def test_one_device_is_repaired_and_made_in_one_message() -> None:
    client = ScriptedDynSec(
        {("deleteClient", "a"): "Client not found", ("deleteRole", "device-a"): "Role not found"}
    )
    client.add_device(device_id="a", topic="sensors/waste/a", password="pw")
    assert len(client.sent) == 1
    assert [c["command"] for c in client.sent[0]] == [
        "deleteClient",
        "deleteRole",
        "createRole",
        "createClient",
    ]


@pytest.mark.parametrize(
    "errors",
    [
        {("createRole", "device-a"): "Role not found"},  # "not found" only excuses deletions
        {("createClient", "a"): "Invalid password"},
        {("deleteClient", "a"): "Internal error"},
    ],
)
def test_one_device_refused_is_an_error(errors: dict[tuple[str, str], str]) -> None:
    client = ScriptedDynSec(errors)
    with pytest.raises(DynSecError):
        client.add_device(device_id="a", topic="sensors/waste/a", password="pw")


def test_one_device_with_a_short_answer_is_an_error() -> None:
    class Short(ScriptedDynSec):
        def execute(self, commands, *, timeout=10):  # type: ignore[no-untyped-def]
            return super().execute(commands, timeout=timeout)[:3]

    with pytest.raises(DynSecError, match="3 answers to 4 commands"):
        Short({}).add_device(device_id="a", topic="sensors/waste/a", password="pw")


def test_a_device_may_publish_on_its_topic_and_its_own_jsons_below_it_only() -> None:
    client = ScriptedDynSec({})
    client.add_devices(_devices("plug-1"))
    (role,) = [c for c in client.sent[0] if c["command"] == "createRole"]
    assert {(a["acltype"], a["topic"], a["allow"]) for a in role["acls"]} == {
        ("publishClientSend", "sensors/waste/plug-1", True),
        # Tasmota (FullTopic set to the device's topic) and Shelly Gen2 (topic prefix).
        ("publishClientSend", "sensors/waste/plug-1/tele/SENSOR", True),
        ("publishClientSend", "sensors/waste/plug-1/status/+", True),
    }


def test_a_device_is_created_bound_to_its_own_client_id() -> None:
    client = ScriptedDynSec({})
    client.add_devices(_devices("bin-1"))
    (create,) = [c for c in client.sent[0] if c["command"] == "createClient"]
    assert (create["username"], create["clientid"]) == ("bin-1", "bin-1")


class BrokerState(ScriptedDynSec):
    """A broker holding `clients` (listed a page at a time) and the gateway role's ACLs."""

    def __init__(self, clients: list[dict[str, Any]], acls: list[dict[str, Any]]) -> None:
        super().__init__({})
        self.clients, self.acls = clients, acls

    def execute(
        self, commands: list[dict[str, Any]], *, timeout: float = 10
    ) -> list[dict[str, Any]]:
        (first,) = commands[:1]
        if first["command"] == "listClients":
            page = self.clients[first["offset"] : first["offset"] + first["count"]]
            return [{"command": "listClients", "data": {"clients": page}}]
        if first["command"] == "getRole":
            return [{"command": "getRole", "data": {"role": {"acls": self.acls}}}]
        return super().execute(commands, timeout=timeout)


def _client(username: str, clientid: str | None, *roles: str) -> dict[str, Any]:
    return {
        "username": username,
        **({"clientid": clientid} if clientid else {}),
        "roles": [{"rolename": r} for r in roles],
        "groups": [],
    }


def test_repair_binds_every_client_and_puts_service_roles_back() -> None:
    from shared.mqtt_admin import GATEWAY_ACLS

    devices = [_client(f"bin-{i}", None, f"device-bin-{i}") for i in range(1500)]
    broker = BrokerState(
        [
            _client("admin", None, "admin"),
            _client("gateway-1", "gateway-1", "device-gateway-1"),
            _client("bin-x", "bin-x", "device-bin-x", "gateway"),
            *devices,
        ],
        [{"acltype": "publishClientSend", "topic": "#", "allow": True}, *GATEWAY_ACLS],
    )
    broker.repair()
    sent = [c for message in broker.sent for c in message]
    assert {"command": "removeRoleACL", "rolename": "gateway", "acltype": "publishClientSend",
            "topic": "#"} in sent  # fmt: skip
    bound = {c["username"] for c in sent if c["command"] == "setClientId"}
    # Every device of every page, not the admin; the already bound ones left alone.
    assert bound == {d["username"] for d in devices}
    assert all(c["clientid"] == c["username"] for c in sent if c["command"] == "setClientId")
    role_changes = {
        (c["command"], c["username"], c["rolename"]) for c in sent if "rolename" in c and
        "username" in c
    }  # fmt: skip
    assert role_changes == {
        ("removeClientRole", "gateway-1", "device-gateway-1"),
        ("addClientRole", "gateway-1", "gateway"),
        ("removeClientRole", "bin-x", "gateway"),
    }
    # In messages of at most 500 commands.
    assert max(len(m) for m in broker.sent) <= 500
