"""POST /v1/devices/bulk against the real stack: PostgreSQL and Mosquitto's dynamic security."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from shared.mqtt_admin import DeviceIdentity, DynSecClient
from tests.support import count_readings, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def bulk_ids(api: httpx.Client) -> Iterator[Callable[[int], list[str]]]:
    """Unique device ids for a test; whatever got registered is removed afterwards."""
    made: list[str] = []

    def make(n: int) -> list[str]:
        tag = uuid.uuid4().hex[:8]
        ids = [f"bulk-{tag}-{i:03d}" for i in range(n)]
        made.extend(ids)
        return ids

    yield make
    for device_id in made:
        api.delete(f"/v1/devices/{device_id}")


@pytest.fixture
def admin_password(stack_env: dict[str, str]) -> str:
    return (Path(stack_env["TOWNPULSE_RUN_DIR"]) / "secrets" / "mqtt-admin").read_text().strip()


def _bulk(api: httpx.Client, rows: list[dict]) -> httpx.Response:
    return api.post("/v1/devices/bulk", json=rows)


def _pub(creds: dict, payload: str, *, topic: str | None = None) -> int:
    done = subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            creds["host"],
            "-p",
            str(creds["port"]),
            "-i",
            creds["username"],
            "-u",
            creds["username"],
            "-P",
            creds["password"],
            "-t",
            topic or creds["topic"],
            "-q",
            "1",
            "-m",
            payload,
        ],
        capture_output=True,
        timeout=30,
    )
    return done.returncode


def _reading() -> str:
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return json.dumps({"ts": ts, "fill_pct": 42})


def test_json_bulk_creates_every_row_with_credentials_once(api: httpx.Client, bulk_ids) -> None:
    ids = bulk_ids(50)
    rows = [
        {"id": i, "domain": "waste", "name": f"bin {n}", "location": {"lat": 45.9, "lon": 6.1}}
        for n, i in enumerate(ids)
    ]
    r = _bulk(api, rows)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["created"], body["exists"], body["errors"]) == (50, 0, 0)
    assert [row["id"] for row in body["rows"]] == ids
    assert [row["row"] for row in body["rows"]] == list(range(50))
    passwords = {row["mqtt"]["password"] for row in body["rows"]}
    assert len(passwords) == 50
    first = body["rows"][0]
    assert first["mqtt"]["username"] == ids[0]
    assert first["mqtt"]["topic"] == f"sensors/waste/{ids[0]}"
    assert first["device"]["location"] == {"lat": 45.9, "lon": 6.1}
    assert api.get(f"/v1/devices/{ids[49]}").json()["name"] == "bin 49"

    again = _bulk(api, rows)
    assert again.status_code == 200
    body = again.json()
    assert (body["created"], body["exists"], body["errors"]) == (0, 50, 0)
    assert all(row["status"] == "exists" and row["mqtt"] is None for row in body["rows"])
    # The re-run issued no new password: the first one still works.
    assert _pub(first["mqtt"], _reading()) == 0
    wait_for(lambda: count_readings(api, ids[0]) == 1, what="the bulk device's reading stored")


def test_csv_bulk_creates_devices(api: httpx.Client, bulk_ids) -> None:
    a, b, c = bulk_ids(3)
    csv_body = (
        "id,domain,name,lat,lon,metadata\n"
        f'{a},energy,Town hall,45.9,6.1,"{{""building_type"": ""town_hall""}}"\n'
        f"{b},traffic,,,,\n"
        f'{c},waste,"Rue de la Paix, 3",45.8,6.2,\n'
    )
    r = api.post("/v1/devices/bulk", content=csv_body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] == 3, body
    got = api.get(f"/v1/devices/{a}").json()
    assert got["metadata"] == {"building_type": "town_hall"}
    assert got["location"] == {"lat": 45.9, "lon": 6.1}
    assert api.get(f"/v1/devices/{b}").json()["location"] is None
    assert api.get(f"/v1/devices/{c}").json()["name"] == "Rue de la Paix, 3"


def test_bad_rows_are_reported_and_good_rows_still_created(
    api: httpx.Client, bulk_ids, device_factory
) -> None:
    good, dup, other = bulk_ids(3)
    taken = device_factory("energy")  # registered as energy: a waste row for it conflicts
    rows = [
        {"id": good, "domain": "waste"},
        {"id": "bad id with spaces", "domain": "waste"},
        {"id": dup, "domain": "traffic"},
        {"id": dup, "domain": "traffic"},
        {"id": other, "domain": "plumbing"},
        {"id": taken.id, "domain": "waste"},
        {"id": taken.id + "-x", "domain": "waste", "location": {"lat": 91, "lon": 0}},
        "not an object",
    ]
    r = _bulk(api, rows)
    assert r.status_code == 200, r.text
    body = r.json()
    status = [row["status"] for row in body["rows"]]
    assert status == ["created", "error", "created", "error", "error", "error", "error", "error"]
    assert (body["created"], body["exists"], body["errors"]) == (2, 0, 6)
    errors = [row["error"] for row in body["rows"]]
    assert errors[1].startswith("id: String should match pattern")
    assert errors[3] == "duplicate id in this request (first at row 2)"
    assert errors[4].startswith("domain: Input should be")
    assert errors[5] == "already registered with domain 'energy'"
    assert errors[6].startswith("location.lat:")
    assert "valid dictionary" in errors[7]
    assert api.get(f"/v1/devices/{good}").status_code == 200
    assert api.get(f"/v1/devices/{other}").status_code == 404
    assert api.get(f"/v1/devices/{taken.id}").json()["domain"] == "energy"


@pytest.mark.parametrize(
    ("content", "media", "code", "reason"),
    [
        (b"{}", "application/json", 422, "expected a JSON list"),
        (b"[", "application/json", 422, "not JSON"),
        (b"[]", "application/json", 422, "no rows"),
        (b"id,domain\n", "text/csv", 422, "no rows"),
        (b"name,lat\nx,1\n", "text/csv", 422, "CSV header"),
        (b"\xff\xfe", "text/csv", 422, "not UTF-8"),
        (b"id: a", "application/yaml", 415, "text/csv"),
    ],
)
def test_malformed_bodies_are_4xx_with_a_reason(
    api: httpx.Client, content: bytes, media: str, code: int, reason: str
) -> None:
    r = api.post("/v1/devices/bulk", content=content, headers={"Content-Type": media})
    assert r.status_code == code, r.text
    assert reason in r.json()["detail"]


def test_too_many_rows_or_bytes_are_refused_before_any_is_registered(api: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    rows = [{"id": f"over-{tag}-{i}", "domain": "waste"} for i in range(1001)]
    r = _bulk(api, rows)
    assert r.status_code == 422
    assert "at most 1000 per request" in r.json()["detail"]
    assert api.get(f"/v1/devices/over-{tag}-0").status_code == 404
    huge = "id,domain,name\n" + f"big-{tag},waste,{'x' * (2 * 1024 * 1024)}\n"
    r = api.post("/v1/devices/bulk", content=huge, headers={"Content-Type": "text/csv"})
    assert r.status_code == 413
    assert "body over" in r.json()["detail"]


def test_only_admins_register_in_bulk(stack_env, role_keys: dict[str, str]) -> None:
    with httpx.Client(
        base_url=stack_env["API_URL"], headers={"Authorization": f"Bearer {role_keys['operator']}"}
    ) as op:
        r = op.post(
            "/v1/devices/bulk", json=[{"id": f"op-{uuid.uuid4().hex[:6]}", "domain": "waste"}]
        )
    assert r.status_code == 403


def test_a_bulk_device_cannot_publish_on_another_devices_topic(
    api: httpx.Client, bulk_ids, admin_password: str, stack_env: dict[str, str]
) -> None:
    a, b = bulk_ids(2)
    rows = _bulk(api, [{"id": a, "domain": "waste"}, {"id": b, "domain": "waste"}]).json()["rows"]
    creds_a, creds_b = rows[0]["mqtt"], rows[1]["mqtt"]
    seen: list[bytes] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    watcher.username_pw_set("admin", admin_password)
    watcher.on_message = lambda _c, _u, msg: seen.append(msg.payload)
    watcher.connect(creds_b["host"], creds_b["port"])
    watcher.loop_start()
    try:
        subscribed = watcher.subscribe(creds_b["topic"], qos=1)
        assert subscribed[0] == mqtt.MQTT_ERR_SUCCESS
        # The broker acknowledges a refused QoS 1 publish (MQTT 3.1.1 has no negative ack):
        # what tells is that it never reaches a subscriber, while B's own message, sent after
        # it, does.
        wait_for(lambda: _pub(creds_b, "warm-up") == 0 and b"warm-up" in seen, what="watcher")
        assert _pub(creds_a, "intruder", topic=creds_b["topic"]) == 0
        assert _pub(creds_b, "marker") == 0
        wait_for(lambda: b"marker" in seen, what="B's own message")
        assert b"intruder" not in seen
    finally:
        watcher.loop_stop()
        watcher.disconnect()


def test_deleting_a_bulk_device_revokes_it(api: httpx.Client, bulk_ids) -> None:
    (device_id,) = bulk_ids(1)
    creds = _bulk(api, [{"id": device_id, "domain": "waste"}]).json()["rows"][0]["mqtt"]
    assert _pub(creds, _reading()) == 0
    assert api.delete(f"/v1/devices/{device_id}").status_code == 204
    assert _pub(creds, _reading()) != 0
    # Registered again (revived): new credentials, the old ones stay revoked.
    again = _bulk(api, [{"id": device_id, "domain": "waste"}]).json()["rows"][0]
    assert again["status"] == "created"
    assert _pub(creds, _reading()) != 0
    assert _pub(again["mqtt"], _reading()) == 0


def test_a_leftover_broker_identity_is_replaced(
    api: httpx.Client, bulk_ids, admin_password: str, stack_env: dict[str, str]
) -> None:
    """A registration interrupted after the broker step leaves a client the DB never kept."""
    (device_id,) = bulk_ids(1)
    host, port = "127.0.0.1", int(stack_env["MQTT_PORT"])
    dynsec = DynSecClient(host=host, port=port, username="admin", password=admin_password)
    dynsec.connect()
    try:
        topic = f"sensors/waste/{device_id}"
        stale = DeviceIdentity(device_id=device_id, topic=topic, password="stale-password-1")
        assert dynsec.add_devices([stale]) == {}
    finally:
        dynsec.close()
    row = _bulk(api, [{"id": device_id, "domain": "waste"}]).json()["rows"][0]
    assert row["status"] == "created", row
    assert _pub(row["mqtt"], _reading()) == 0
    assert _pub({**row["mqtt"], "password": "stale-password-1"}, _reading()) != 0
