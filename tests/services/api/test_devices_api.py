"""The operator API against the real stack: auth, device registry, MQTT access, readings."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared import domains
from tests.support import count_readings, wait_for

pytestmark = pytest.mark.integration


def _pub(
    device, payload: str, *, password: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            device.host,
            "-p",
            str(device.port),
            "-i",
            device.username,
            "-u",
            device.username,
            "-P",
            password or device.password,
            "-t",
            device.topic,
            "-q",
            "1",
            "-m",
            payload,
        ],
        capture_output=True,
        timeout=30,
    )


def _all_ids(api: httpx.Client, **params: str) -> list[str]:
    """Every registered id, page by page (a town may have thousands of devices)."""
    ids: list[str] = []
    while True:
        body = api.get("/v1/devices", params={**params, "limit": 1000, "offset": len(ids)}).json()
        ids += [d["id"] for d in body["items"]]
        if len(ids) >= body["total"] or not body["items"]:
            return ids


@pytest.mark.parametrize(
    "path", ["/v1/devices", "/v1/deadletters", "/v1/api-keys", "/v1/devices/x/readings"]
)
def test_every_endpoint_needs_a_valid_key(stack_env, path: str) -> None:
    url = stack_env["API_URL"] + path
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer tp_nope_nope"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer garbage"}).status_code == 401


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_operations_endpoints_are_open(stack_env, path: str) -> None:
    assert httpx.get(stack_env["API_URL"] + path).status_code == 200


def test_operator_keys_read_but_cannot_administer(api: httpx.Client, stack_env) -> None:
    r = api.post("/v1/api-keys", json={"name": f"op-{uuid.uuid4().hex[:6]}", "role": "operator"})
    assert r.status_code == 201
    created = r.json()
    listed = api.get("/v1/api-keys").json()
    assert all("key" not in k and "key_hash" not in k for k in listed)
    with httpx.Client(
        base_url=stack_env["API_URL"], headers={"Authorization": f"Bearer {created['key']}"}
    ) as op:
        assert op.get("/v1/devices").status_code == 200
        assert op.post("/v1/devices", json={"id": "nope", "domain": "waste"}).status_code == 403
        assert op.get("/v1/api-keys").status_code == 403
    assert api.delete(f"/v1/api-keys/{created['id']}").status_code == 204
    with httpx.Client(
        base_url=stack_env["API_URL"], headers={"Authorization": f"Bearer {created['key']}"}
    ) as op:
        assert op.get("/v1/devices").status_code == 401


def test_register_get_list_delete(api: httpx.Client) -> None:
    device_id = f"meter-{uuid.uuid4().hex[:8]}"
    body = {
        "id": device_id,
        "domain": "energy",
        "name": "Town hall",
        "location": {"lat": 45.9, "lon": 6.12},
        "metadata": {"building": "town hall"},
    }
    r = api.post("/v1/devices", json=body)
    assert r.status_code == 201
    created = r.json()
    assert created["mqtt"]["username"] == device_id
    assert created["mqtt"]["topic"] == f"sensors/energy/{device_id}"
    assert len(created["mqtt"]["password"]) >= 16
    assert api.post("/v1/devices", json=body).status_code == 409

    got = api.get(f"/v1/devices/{device_id}").json()
    assert got["name"] == "Town hall" and got["location"] == {"lat": 45.9, "lon": 6.12}
    assert "password" not in json.dumps(got)
    assert device_id in _all_ids(api, domain="energy")

    assert api.delete(f"/v1/devices/{device_id}").status_code == 204
    assert api.get(f"/v1/devices/{device_id}").status_code == 404
    assert api.delete(f"/v1/devices/{device_id}").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"id": "has space", "domain": "waste"},
        {"id": "ok-id", "domain": "water"},
        {"id": "ok-id", "domain": "waste", "location": {"lat": 91, "lon": 0}},
        {"domain": "waste"},
    ],
    ids=["bad-id", "bad-domain", "bad-lat", "no-id"],
)
def test_invalid_registrations_are_422(api: httpx.Client, body: dict) -> None:
    assert api.post("/v1/devices", json=body).status_code == 422


def test_delete_revokes_mqtt_access(api: httpx.Client, device_factory) -> None:
    device = device_factory("waste")
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert _pub(device, json.dumps({"ts": ts, "fill_pct": 1})).returncode == 0
    assert api.delete(f"/v1/devices/{device.id}").status_code == 204
    refused = _pub(device, json.dumps({"fill_pct": 2}))
    assert refused.returncode != 0


def test_rotating_credentials_disables_the_old_password(api: httpx.Client, device_factory) -> None:
    device = device_factory("traffic")
    r = api.post(f"/v1/devices/{device.id}/credentials")
    assert r.status_code == 200
    new_password = r.json()["mqtt"]["password"]
    assert new_password != device.password
    assert _pub(device, json.dumps({"vehicles": 3})).returncode != 0
    assert _pub(device, json.dumps({"vehicles": 3}), password=new_password).returncode == 0
    wait_for(
        lambda: count_readings(api, device.id) == 1, what="the reading sent with the new password"
    )


def test_bucketed_readings_match_the_raw_values(api: httpx.Client, device_factory) -> None:
    device = device_factory("traffic")
    # Two hours of 5-minute counts, ending well in the past, with values we can sum by hand.
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    pack = [{"bn": f"{device.id}:", "bt": start.timestamp(), "bu": "veh"}]
    pack += [{"n": "vehicles", "t": 300 * i, "v": float(i)} for i in range(24)]
    assert _pub(device, json.dumps(pack)).returncode == 0
    wait_for(lambda: count_readings(api, device.id) == 24, what="24 readings")

    params = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    raw = api.get(f"/v1/devices/{device.id}/readings", params=params).json()["items"]
    assert [r["value"] for r in raw] == [float(i) for i in range(24)]
    assert raw[0]["unit"] == "veh"

    q15 = api.get(f"/v1/devices/{device.id}/readings", params={**params, "bucket": "15m"})
    b15 = q15.json()["items"]
    assert len(b15) == 8
    assert b15[0] == {
        "bucket": start.isoformat().replace("+00:00", "Z"),
        "metric": "vehicles",
        "avg": 1.0,
        "min": 0.0,
        "max": 2.0,
        "count": 3,
    }

    hourly = api.get(f"/v1/devices/{device.id}/readings", params={**params, "bucket": "1h"}).json()[
        "items"
    ]
    assert [(h["count"], h["min"], h["max"], h["avg"]) for h in hourly] == [
        (12, 0.0, 11.0, 5.5),
        (12, 12.0, 23.0, 17.5),
    ]

    daily = api.get(
        f"/v1/devices/{device.id}/readings",
        params={"start": (start - timedelta(days=2)).isoformat(), "bucket": "1d"},
    )
    assert sum(d["count"] for d in daily.json()["items"]) == 24

    assert api.get(f"/v1/devices/{device.id}/readings", params={"bucket": "7x"}).status_code == 422
    assert (
        api.get(
            f"/v1/devices/{device.id}/readings", params={"start": "2026-01-01T00:00:00"}
        ).status_code
        == 422
    )


def test_readings_of_unknown_device_is_404(api: httpx.Client) -> None:
    assert api.get("/v1/devices/nobody-here/readings").status_code == 404


def test_unknown_domain_route_is_404(api: httpx.Client) -> None:
    assert api.get("/v1/water/meters").status_code == 404


def test_a_device_of_an_unregistered_domain_is_refused_with_the_domains_it_may_be(
    api: httpx.Client,
) -> None:
    device_id = f"p-{uuid.uuid4().hex[:8]}"
    response = api.post("/v1/devices", json={"id": device_id, "domain": "parking"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "domain"]
    assert all(f"'{name}'" in error["msg"] for name in domains.names())
    assert api.get(f"/v1/devices/{device_id}").status_code == 404
