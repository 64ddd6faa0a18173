"""Registering the sensors a town already owns, against the real stack: by DevEUI or external id
with a profile, one at a time or from a CSV; their link health; HTTP push tokens; erasure."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from shared.mqtt_admin import DynSecClient
from tests.support import wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.integration


def _sql(stack: Stack, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(stack.database_url(), autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


# A metric each domain's services consume, copied from a decoded field.
_METRIC = {"waste": "fill_pct", "energy": "energy_kwh", "traffic": "vehicles"}


def _definition(name: str, domain: str) -> dict[str, Any]:
    """A valid profile definition (services/gateway/ingest/profile.py), as the gateway reads."""
    return {"name": name, "domain": domain, "readings": [{"metric": _METRIC[domain], "field": "v"}]}


@pytest.fixture
def profile(stack: Stack) -> Iterator[Callable[[str], str]]:
    """Profiles of a domain with unique names (the gateway ships its own at start-up; these
    are the test's), deleted afterwards."""
    made: list[str] = []

    def make(domain: str) -> str:
        name = f"test-{uuid.uuid4().hex[:10]}"
        _sql(
            stack,
            "INSERT INTO device_profiles (name, domain, definition) VALUES (%s, %s, %s)",
            (name, domain, Jsonb(_definition(name, domain))),
        )
        made.append(name)
        return name

    yield make
    for name in made:
        _sql(stack, "DELETE FROM device_profiles WHERE name = %s", (name,))


@pytest.fixture
def registered(api: httpx.Client) -> Iterator[list[str]]:
    """Ids the test registered (append them): erased afterwards, uplinks and tokens too."""
    ids: list[str] = []
    yield ids
    for device_id in ids:
        api.delete(f"/v1/devices/{device_id}", params={"erase": "true", "aggregates": "true"})


def _dev_eui() -> str:
    return secrets.token_hex(8)


def _listed(api: httpx.Client, device_id: str, *, domain: str) -> dict[str, Any] | None:
    """The device as GET /v1/devices lists it, page by page (the stack has many)."""
    offset = 0
    while True:
        page = api.get(
            "/v1/devices", params={"domain": domain, "limit": 1000, "offset": offset}
        ).json()
        found = [d for d in page["items"] if d["id"] == device_id]
        offset += len(page["items"])
        if found or not page["items"] or offset >= page["total"]:
            return found[0] if found else None


def _admin_password(stack_env: dict[str, str]) -> str:
    return (Path(stack_env["TOWNPULSE_RUN_DIR"]) / "secrets" / "mqtt-admin").read_text().strip()


def _broker_knows(stack_env: dict[str, str], username: str) -> bool:
    dynsec = DynSecClient(
        host="127.0.0.1",
        port=int(stack_env["MQTT_PORT"]),
        username="admin",
        password=_admin_password(stack_env),
    )
    dynsec.connect()
    try:
        (answer,) = dynsec.execute([{"command": "getClient", "username": username}])
    finally:
        dynsec.close()
    return "error" not in answer


def test_a_lorawan_device_is_registered_by_deveui_and_profile_without_mqtt_credentials(
    api: httpx.Client,
    profile: Callable[[str], str],
    registered: list[str],
    stack_env: dict[str, str],
) -> None:
    bins = profile("waste")
    eui = _dev_eui()
    printed = ":".join(eui[i : i + 2] for i in range(0, 16, 2)).upper()
    r = api.post("/v1/devices", json={"dev_eui": printed, "profile": bins, "name": "Bin 4"})
    assert r.status_code == 201, r.text
    registered.append(f"eui-{eui}")
    body = r.json()
    assert body["mqtt"] is None
    device = body["device"]
    assert device["id"] == f"eui-{eui}"
    assert (device["dev_eui"], device["profile"], device["domain"]) == (eui, bins, "waste")
    assert device["link"] is None
    got = api.get(f"/v1/devices/eui-{eui}").json()
    assert (got["dev_eui"], got["profile"], got["external_id"]) == (eui, bins, None)
    # Nothing was provisioned in Mosquitto, and no password can be asked for later.
    assert not _broker_knows(stack_env, f"eui-{eui}")
    assert api.post(f"/v1/devices/eui-{eui}/credentials").status_code == 409
    listed = _listed(api, f"eui-{eui}", domain="waste")
    assert listed is not None and (listed["dev_eui"], listed["profile"]) == (eui, bins)


def test_a_registered_deveui_or_external_id_is_a_conflict(
    api: httpx.Client, profile: Callable[[str], str], registered: list[str]
) -> None:
    meters = profile("energy")
    eui, ext = _dev_eui(), f"shelly-{uuid.uuid4().hex[:8]}"
    first = api.post("/v1/devices", json={"dev_eui": eui, "profile": meters})
    assert first.status_code == 201, first.text
    registered.append(f"eui-{eui}")
    other = f"meter-{uuid.uuid4().hex[:8]}"
    r = api.post("/v1/devices", json={"id": other, "dev_eui": eui.upper(), "domain": "energy"})
    assert r.status_code == 409
    assert f"eui-{eui}" in r.json()["detail"]
    assert api.get(f"/v1/devices/{other}").status_code == 404

    mapped = api.post("/v1/devices", json={"external_id": ext, "profile": meters})
    assert mapped.status_code == 201, mapped.text
    registered.append(ext)
    again = api.post("/v1/devices", json={"id": other, "external_id": ext, "profile": meters})
    assert again.status_code == 409
    # Deleted: its DevEUI is free again, for a device with another id.
    assert api.delete(f"/v1/devices/eui-{eui}").status_code == 204
    r = api.post("/v1/devices", json={"id": other, "dev_eui": eui, "domain": "energy"})
    assert r.status_code == 201, r.text
    registered.append(other)


def _pub(creds: dict[str, Any], topic: str, payload: str) -> int:
    return subprocess.run(
        [
            *("mosquitto_pub", "-h", creds["host"], "-p", str(creds["port"])),
            *("-i", creds["username"], "-u", creds["username"], "-P", creds["password"]),
            *("-t", topic, "-q", "1", "-m", payload),
        ],
        capture_output=True,
        timeout=30,
    ).returncode


def test_a_device_with_an_external_id_and_a_profile_gets_mqtt_credentials_for_its_json(
    api: httpx.Client,
    profile: Callable[[str], str],
    registered: list[str],
    stack_env: dict[str, str],
) -> None:
    """A Tasmota or Shelly on TownPulse's broker publishes its own JSON below its own topic."""
    plugs = profile("energy")
    ext = f"tasmota-{uuid.uuid4().hex[:8]}"
    r = api.post("/v1/devices", json={"external_id": ext, "profile": plugs})
    assert r.status_code == 201, r.text
    registered.append(ext)
    assert (r.json()["device"]["id"], r.json()["device"]["domain"]) == (ext, "energy")
    creds = r.json()["mqtt"]
    assert creds["username"] == ext and creds["password"]
    assert creds["topic"] == f"sensors/energy/{ext}"

    seen: list[str] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    watcher.username_pw_set("admin", _admin_password(stack_env))
    watcher.on_message = lambda _c, _u, msg: seen.append(msg.topic.removeprefix(creds["topic"]))
    watcher.connect(creds["host"], creds["port"])
    watcher.loop_start()
    try:
        assert watcher.subscribe(f"{creds['topic']}/#", qos=1)[0] == mqtt.MQTT_ERR_SUCCESS
        sensor = '{"ENERGY": {"Total": 1.5}}'
        wait_for(
            lambda: (
                _pub(creds, f"{creds['topic']}/tele/SENSOR", sensor) == 0 and "/tele/SENSOR" in seen
            ),
            what="Tasmota's SENSOR message",
        )
        # Refused by the broker (acknowledged all the same in MQTT 3.1.1): what tells is that
        # it never reaches a subscriber, while a message sent after it does.
        assert _pub(creds, f"{creds['topic']}/tele/STATE", "{}") == 0
        assert _pub(creds, f"{creds['topic']}/status/switch:0", '{"aenergy": {}}') == 0
        wait_for(lambda: "/status/switch:0" in seen, what="Shelly's status message")
        assert "/tele/STATE" not in seen
    finally:
        watcher.loop_stop()
        watcher.disconnect()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"dev_eui": "24e1241"}, "16 hex digits"),
        ({"dev_eui": "24e124126b316584"}, "domain: required unless a profile"),
        ({"external_id": "a:b", "domain": "waste"}, "not a valid device id"),
        ({"dev_eui": "24e124126b316584", "profile": "no-such-profile-xyz"}, "unknown profile"),
    ],
)
def test_invalid_sensor_registrations_are_422_with_the_reason(
    api: httpx.Client, body: dict[str, str], reason: str
) -> None:
    r = api.post("/v1/devices", json=body)
    assert r.status_code == 422, r.text
    assert reason in str(r.json()["detail"])


def test_a_profile_of_another_domain_is_refused(
    api: httpx.Client, profile: Callable[[str], str]
) -> None:
    r = api.post(
        "/v1/devices", json={"dev_eui": _dev_eui(), "domain": "waste", "profile": profile("energy")}
    )
    assert r.status_code == 422
    assert "is for domain 'energy'" in r.json()["detail"]


def test_csv_rows_with_only_deveui_and_profile(
    api: httpx.Client,
    profile: Callable[[str], str],
    registered: list[str],
    stack_env: dict[str, str],
) -> None:
    bins, counters = profile("waste"), profile("traffic")
    a, b, taken = _dev_eui(), _dev_eui(), _dev_eui()
    holder = api.post("/v1/devices", json={"dev_eui": taken, "profile": bins, "id": f"h-{taken}"})
    assert holder.status_code == 201, holder.text
    registered += [f"h-{taken}", f"eui-{a}", f"eui-{b}"]
    csv_body = (
        "dev_eui,profile\n"
        f"{a.upper()},{bins}\n"
        f"{b},{counters}\n"
        f"{a},{bins}\n"
        f"{taken},{bins}\n"
        f"{_dev_eui()},no-such-profile-xyz\n"
    )
    r = api.post("/v1/devices/bulk", content=csv_body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [row["status"] for row in rows] == ["created", "created", "error", "error", "error"]
    assert rows[0]["id"] == f"eui-{a}" and rows[0]["mqtt"] is None
    assert rows[0]["device"]["domain"] == "waste"
    assert rows[1]["device"]["domain"] == "traffic" and rows[1]["mqtt"] is None
    assert rows[2]["error"] == "duplicate id in this request (first at row 0)"
    assert rows[3]["error"] == f"dev_eui '{taken}' is registered to device 'h-{taken}'"
    assert rows[4]["error"] == "unknown profile 'no-such-profile-xyz'"
    assert not _broker_knows(stack_env, f"eui-{a}")
    # A re-run finds them registered, as the CSV says.
    again = api.post(
        "/v1/devices/bulk",
        content=f"dev_eui,profile\n{a},{bins}\n",
        headers={"Content-Type": "text/csv"},
    )
    assert again.json()["rows"][0]["status"] == "exists"


def test_json_bulk_mixes_mqtt_and_lorawan_devices(
    api: httpx.Client, profile: Callable[[str], str], registered: list[str]
) -> None:
    bins = profile("waste")
    eui, plain = _dev_eui(), f"bin-{uuid.uuid4().hex[:8]}"
    registered += [f"eui-{eui}", plain]
    r = api.post(
        "/v1/devices/bulk",
        json=[{"dev_eui": eui, "profile": bins}, {"id": plain, "domain": "waste"}],
    )
    assert r.status_code == 200, r.text
    lorawan, mqtt = r.json()["rows"]
    assert lorawan["status"] == mqtt["status"] == "created"
    assert lorawan["mqtt"] is None
    assert mqtt["mqtt"]["username"] == plain
    # The same rows again: registered as they say. Naming the MQTT device by a DevEUI now is a
    # conflict, not a silent change.
    again = api.post(
        "/v1/devices/bulk",
        json=[
            {"dev_eui": eui, "profile": bins},
            {"id": plain, "domain": "waste", "dev_eui": _dev_eui()},
        ],
    ).json()["rows"]
    assert [r["status"] for r in again] == ["exists", "error"]
    assert again[1]["error"] == "already registered without a dev_eui"


def test_link_health_from_the_newest_uplink(
    api: httpx.Client, profile: Callable[[str], str], registered: list[str], stack: Stack
) -> None:
    eui = _dev_eui()
    device_id = f"eui-{eui}"
    assert api.post("/v1/devices", json={"dev_eui": eui, "profile": profile("waste")}).is_success
    registered.append(device_id)
    now = datetime.now(UTC).replace(microsecond=0)
    for k, (rssi, f_cnt) in enumerate([(-80.0, 10), (-95.5, 11), (-112.0, 12)]):
        _sql(
            stack,
            "INSERT INTO device_uplinks (device_id, ts, source, f_port, f_cnt, codec,"
            " codec_version, rssi, snr, gateways, received_at)"
            " VALUES (%s, %s, 'chirpstack', 85, %s, 'milesight-em310-udl', 2, %s, -3.5, %s, now())",
            (device_id, now - timedelta(minutes=10 * (2 - k)), f_cnt, rssi, 3 - k),
        )
    link = api.get(f"/v1/devices/{device_id}").json()["link"]
    assert link == {
        "last_uplink_at": now.isoformat().replace("+00:00", "Z"),
        "rssi": -112.0,
        "snr": -3.5,
        "gateways": 1,
        "f_cnt": 12,
        "codec": "milesight-em310-udl",
        "codec_version": 2,
    }
    r = api.get(f"/v1/devices/{device_id}/uplinks", params={"limit": 2})
    assert r.status_code == 200, r.text
    assert [u["f_cnt"] for u in r.json()] == [12, 11]
    assert len(api.get(f"/v1/devices/{device_id}/uplinks").json()) == 3
    assert api.get(f"/v1/devices/{device_id}/uplinks", params={"limit": 0}).status_code == 422
    assert api.get(f"/v1/devices/{device_id}/uplinks", params={"limit": 1001}).status_code == 422
    assert api.get("/v1/devices/no-such-device/uplinks").status_code == 404


def _tokens(stack: Stack, device_id: str) -> list[dict[str, Any]]:
    return _sql(
        stack,
        "SELECT id, token_hash, revoked_at FROM ingest_tokens WHERE device_id = %s"
        " ORDER BY created_at",
        (device_id,),
    )


def test_an_ingest_token_is_shown_once_stored_hashed_and_replaced(
    api: httpx.Client,
    device_factory: Callable[..., Any],
    stack: Stack,
    role_keys: dict[str, str],
    stack_env: dict[str, str],
) -> None:
    device = device_factory("energy")
    r = api.post(f"/v1/devices/{device.id}/ingest-token")
    assert r.status_code == 201, r.text
    first = r.json()["token"]
    assert first.startswith("tpi_") and r.json()["device_id"] == device.id
    (row,) = _tokens(stack, device.id)
    assert bytes(row["token_hash"]) == hashlib.sha256(first.encode()).digest()
    assert first.split("_")[1] == row["id"] and row["revoked_at"] is None
    assert first not in str(api.get("/v1/audit", params={"limit": 20}).json())

    second = api.post(f"/v1/devices/{device.id}/ingest-token").json()["token"]
    assert second != first
    tokens = _tokens(stack, device.id)
    assert [t["revoked_at"] is None for t in tokens] == [False, True]

    with httpx.Client(
        base_url=stack_env["API_URL"], headers={"Authorization": f"Bearer {role_keys['operator']}"}
    ) as op:
        assert op.post(f"/v1/devices/{device.id}/ingest-token").status_code == 403
    assert api.post("/v1/devices/no-such-device/ingest-token").status_code == 404
    # Deleting the device revokes its tokens.
    assert api.delete(f"/v1/devices/{device.id}").status_code == 204
    assert all(t["revoked_at"] is not None for t in _tokens(stack, device.id))


def test_erasure_removes_uplinks_and_ingest_tokens(
    api: httpx.Client, profile: Callable[[str], str], stack: Stack
) -> None:
    eui = _dev_eui()
    device_id = f"eui-{eui}"
    assert api.post("/v1/devices", json={"dev_eui": eui, "profile": profile("waste")}).is_success
    _sql(
        stack,
        "INSERT INTO device_uplinks (device_id, ts, source, received_at)"
        " VALUES (%s, now(), 'chirpstack', now())",
        (device_id,),
    )
    assert api.post(f"/v1/devices/{device_id}/ingest-token").status_code == 201
    r = api.delete(f"/v1/devices/{device_id}", params={"erase": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"]["device_uplinks"] == 1
    assert r.json()["rows"]["ingest_tokens"] == 1
    assert _tokens(stack, device_id) == []
    left = _sql(
        stack, "SELECT count(*) AS n FROM device_uplinks WHERE device_id = %s", (device_id,)
    )
    assert left == [{"n": 0}]
