"""The broker's identities against the real stack: each bound to its own client id, the stack's
names reserved, service identities repaired at start-up, retained messages refused."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from shared.mqtt_admin import GATEWAY_ACLS, GATEWAY_ROLE, DynSecClient, gateway_username
from testing.prometheus import metric_value
from tests.support import Publisher, RegisteredDevice, count_readings, since_longest_range, wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

GATEWAY = gateway_username(1)


@pytest.fixture
def dynsec(stack_env: dict[str, str]) -> Iterator[DynSecClient]:
    secret = Path(stack_env["TOWNPULSE_RUN_DIR"]) / "secrets" / "mqtt-admin"
    client = DynSecClient(
        host="127.0.0.1",
        port=int(stack_env["MQTT_PORT"]),
        username="admin",
        password=secret.read_text().strip(),
    )
    client.connect()
    yield client
    client.close()


class Attempt:
    """One MQTT connection attempt, its CONNACK's reason code kept."""

    def __init__(self, *, host: str, port: int, username: str, password: str, client_id: str):
        self.result: Any = None
        self._answered = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        assert self._answered.wait(10), "no CONNACK"

    def _on_connect(self, client: mqtt.Client, u: object, f: object, rc: Any, p: object) -> None:
        self.result = rc
        self._answered.set()

    @property
    def accepted(self) -> bool:
        return not self.result.is_failure

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _attempt(device: RegisteredDevice, client_id: str) -> Attempt:
    return Attempt(
        host=device.host,
        port=device.port,
        username=device.username,
        password=device.password,
        client_id=client_id,
    )


def _gateway_metric(service_urls: dict[str, str], event: str) -> float:
    text = httpx.get(f"{service_urls['gateway']}/metrics", timeout=10).text
    return metric_value(text, "townpulse_gateway_mqtt_connections_total", event=event)


def _acl(acl: dict[str, Any]) -> tuple[str, str, bool]:
    return (acl["acltype"], acl["topic"], acl["allow"])


def _reading(value: float) -> str:
    return json.dumps({"ts": datetime.now(UTC).isoformat(), "fill_pct": value})


def test_a_device_cannot_take_the_gateways_client_id_and_readings_keep_flowing(
    api: httpx.Client, device_factory, publisher_factory, service_urls: dict[str, str]
) -> None:
    mallory = device_factory("waste")
    honest = device_factory("waste")
    lost_before = _gateway_metric(service_urls, "lost")
    for _ in range(3):  # "again and again": each try refused
        attempt = _attempt(mallory, GATEWAY)
        try:
            assert not attempt.accepted, "a device's credentials took the gateway's client id"
        finally:
            attempt.close()
    # Its readings keep flowing, and the gateway was never disconnected.
    publisher_factory(honest).publish(_reading(12)).wait_for_publish(10)
    wait_for(lambda: count_readings(api, honest.id) == 1, timeout=60, what="the reading")
    assert _gateway_metric(service_urls, "lost") == lost_before


def test_a_device_cannot_take_another_devices_client_id(device_factory, publisher_factory) -> None:
    a = device_factory("waste")
    b = device_factory("waste")
    b_connection: Publisher = publisher_factory(b)
    attempt = _attempt(a, b.id)
    try:
        assert not attempt.accepted
    finally:
        attempt.close()
    assert b_connection.client.is_connected()
    # Its own id is the one it may use, and any other is refused too.
    mine = _attempt(a, a.id)
    other = _attempt(a, f"{a.id}-2")
    try:
        assert mine.accepted
        assert not other.accepted
    finally:
        mine.close()
        other.close()


@pytest.mark.parametrize(
    "device_id", ["gateway", "admin", GATEWAY, "Gateway-7", "townpulse-api", "mosquitto"]
)
def test_a_reserved_id_is_refused_with_a_reason(
    api: httpx.Client, dynsec: DynSecClient, device_id: str
) -> None:
    r = api.post("/v1/devices", json={"id": device_id, "domain": "waste"})
    assert r.status_code == 422, r.text
    assert "reserved" in r.text
    gateway = dynsec.execute([{"command": "getClient", "username": GATEWAY}])[0]
    assert gateway["data"]["client"]["roles"] == [{"rolename": GATEWAY_ROLE}]


def test_a_reserved_external_id_standing_for_the_id_is_refused(api: httpx.Client) -> None:
    r = api.post("/v1/devices", json={"external_id": "admin", "domain": "waste"})
    assert r.status_code == 422, r.text
    assert "reserved" in r.text


@pytest.mark.parametrize("as_csv", [False, True])
def test_reserved_ids_are_refused_in_bulk_and_the_other_rows_registered(
    api: httpx.Client, as_csv: bool
) -> None:
    good = f"bin-{uuid.uuid4().hex[:8]}"
    try:
        if as_csv:
            body = f"id,domain\ngateway,waste\n{good},waste\nadmin,waste\n"
            r = api.post("/v1/devices/bulk", content=body, headers={"content-type": "text/csv"})
        else:
            rows = [{"id": i, "domain": "waste"} for i in ("gateway", good, "admin")]
            r = api.post("/v1/devices/bulk", json=rows)
        assert r.status_code == 200, r.text
        result = r.json()
        by_id = {row["id"]: row for row in result["rows"]}
        assert by_id[good]["status"] == "created"
        for reserved in ("gateway", "admin"):
            assert by_id[reserved]["status"] == "error"
            assert "reserved" in by_id[reserved]["error"]
    finally:
        api.delete(f"/v1/devices/{good}")


def test_registration_says_which_client_id_to_use(api: httpx.Client, device_factory) -> None:
    device_id = f"cid-{uuid.uuid4().hex[:8]}"
    r = api.post("/v1/devices", json={"id": device_id, "domain": "waste"})
    try:
        assert r.status_code == 201, r.text
        assert r.json()["mqtt"]["client_id"] == device_id
    finally:
        api.delete(f"/v1/devices/{device_id}")


def test_a_retained_publish_is_refused_and_never_delivered(
    api: httpx.Client, device_factory, stack_env: dict[str, str]
) -> None:
    device = device_factory("waste")
    publisher = Publisher(device)
    try:
        publisher.client.publish(device.topic, _reading(50), qos=1, retain=True)
        # The broker closes the connection of a client that sends the retain flag.
        wait_for(lambda: not publisher.client.is_connected(), timeout=10, what="the refusal")
    finally:
        publisher.close()
    # A fresh subscriber (the broker's admin may read every topic) is handed nothing retained.
    got: list[tuple[bytes, bool]] = []
    subscribed = threading.Event()
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    secret = Path(stack_env["TOWNPULSE_RUN_DIR"]) / "secrets" / "mqtt-admin"
    watcher.username_pw_set("admin", secret.read_text().strip())
    watcher.on_message = lambda _c, _u, msg: got.append((msg.payload, msg.retain))
    watcher.on_subscribe = lambda *_: subscribed.set()
    watcher.connect("127.0.0.1", int(stack_env["MQTT_PORT"]))
    watcher.loop_start()
    honest = Publisher(device)
    try:
        watcher.subscribe(device.topic, qos=1)
        assert subscribed.wait(10)
        # Published after the subscription: it comes after anything retained would have.
        honest.publish(_reading(1)).wait_for_publish(10)
        wait_for(lambda: got, timeout=20, what="the honest reading at the watcher")
        assert [retained for _, retained in got] == [False]
    finally:
        watcher.loop_stop()
        watcher.disconnect()
        honest.close()
    # Only the honest reading was stored: the retained one was never accepted.
    wait_for(lambda: count_readings(api, device.id) == 1, timeout=60, what="the honest reading")
    items = api.get(
        f"/v1/devices/{device.id}/readings", params={"start": since_longest_range()}
    ).json()["items"]
    assert [i["value"] for i in items] == [1]


def test_repairing_an_untouched_broker_changes_nothing_and_finishes(dynsec: DynSecClient) -> None:
    # Every `townpulse up` after the first repairs a broker with nothing to repair: the role's
    # ACL fixes are then an empty batch, which the plugin leaves unanswered (CI waited 10 s for
    # it and failed the start).
    dynsec.repair()
    before = dynsec.execute([{"command": "getRole", "rolename": GATEWAY_ROLE}])[0]
    dynsec.repair()
    after = dynsec.execute([{"command": "getRole", "rolename": GATEWAY_ROLE}])[0]
    assert sorted(map(_acl, after["data"]["role"]["acls"])) == sorted(map(_acl, GATEWAY_ACLS))
    assert after["data"] == before["data"]
    assert dynsec.execute([]) == []


@pytest.mark.e2e
def test_tampered_service_identities_are_repaired_when_the_api_starts(
    api: httpx.Client,
    stack: Stack,
    dynsec: DynSecClient,
    device_factory,
    publisher_factory,
    service_urls: dict[str, str],
) -> None:
    device = device_factory("waste")
    # What a device registered as `gateway-1` by an older version, or a hand edit, leaves.
    dynsec.check(
        [
            {
                "command": "removeRoleACL",
                "rolename": GATEWAY_ROLE,
                "acltype": "subscribePattern",
                "topic": "sensors/#",
            },
            {
                "command": "addRoleACL",
                "rolename": GATEWAY_ROLE,
                "acltype": "publishClientSend",
                "topic": "#",
                "priority": 0,
                "allow": True,
            },
            {"command": "addClientRole", "username": device.username, "rolename": GATEWAY_ROLE},
            {"command": "setClientId", "username": device.username, "clientid": ""},
        ]
    )
    stack.restart("api")
    role = dynsec.execute([{"command": "getRole", "rolename": GATEWAY_ROLE}])[0]
    acls = role["data"]["role"]["acls"]
    assert sorted(map(_acl, acls)) == sorted(map(_acl, GATEWAY_ACLS))
    client = dynsec.execute([{"command": "getClient", "username": device.username}])[0]
    assert client["data"]["client"]["clientid"] == device.id
    assert GATEWAY_ROLE not in {r["rolename"] for r in client["data"]["client"]["roles"]}
    gateway = dynsec.execute([{"command": "getClient", "username": GATEWAY}])[0]
    assert gateway["data"]["client"]["clientid"] == GATEWAY
    assert gateway["data"]["client"]["roles"] == [{"rolename": GATEWAY_ROLE}]
    # A device bound again: its credentials work under its id only.
    attempt = _attempt(device, device.id)
    try:
        assert attempt.accepted
    finally:
        attempt.close()
    # The gateway, kicked by the broker when its role changed, may have subscribed while its
    # ACL was missing: it keeps asking, so it hears devices again without a restart.
    publisher_factory(device).publish(_reading(5)).wait_for_publish(10)
    wait_for(lambda: count_readings(api, device.id) == 1, timeout=60, what="the reading")


@pytest.mark.e2e
def test_the_gateway_does_not_ingest_again_after_a_reconnect(
    api: httpx.Client, stack: Stack, device_factory, publisher_factory
) -> None:
    device = device_factory("waste")
    publisher = publisher_factory(device)
    publisher.publish(_reading(7)).wait_for_publish(10)
    wait_for(lambda: count_readings(api, device.id) == 1, timeout=60, what="the reading")
    stack.restart("gateway")
    # A reading published after the gateway's new subscription arrives after anything the
    # broker would hand it from its retained store.
    publisher.publish(_reading(8)).wait_for_publish(10)
    wait_for(lambda: count_readings(api, device.id) >= 2, timeout=60, what="the second reading")
    assert count_readings(api, device.id) == 2
