"""The audit log: every change and every refusal, with who, role, action, target, outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from shared.auth import key_id_of

pytestmark = pytest.mark.integration


def _entries(api: httpx.Client, **params: object) -> list[dict]:
    r = api.get("/v1/audit", params=params)
    assert r.status_code == 200, r.text
    return list(r.json())


def _one(api: httpx.Client, **params: object) -> dict:
    found = _entries(api, **params)
    assert len(found) == 1, found
    return found[0]


def test_device_key_and_webhook_changes_are_recorded_with_who_and_what(
    api: httpx.Client, admin_key: str
) -> None:
    me = key_id_of(admin_key)
    device_id = f"audit-{uuid.uuid4().hex[:10]}"
    assert api.post("/v1/devices", json={"id": device_id, "domain": "waste"}).status_code == 201
    assert api.post(f"/v1/devices/{device_id}/credentials").status_code == 200
    assert api.delete(f"/v1/devices/{device_id}").status_code == 204
    actions = [e["action"] for e in _entries(api, target=device_id)]
    assert actions == ["delete_device", "rotate_credentials", "register_device"]
    entry = _one(api, target=device_id, action="register_device")
    assert (entry["key_id"], entry["role"], entry["outcome"]) == (me, "admin", "ok")
    assert entry["detail"]["status"] == 201
    # The MQTT password is in the response only, never in the log.
    assert "password" not in str(_entries(api, target=device_id))

    r = api.post("/v1/api-keys", json={"name": "audited", "role": "viewer"})
    new_id = r.json()["id"]
    assert api.delete(f"/v1/api-keys/{new_id}").status_code == 204
    created = _one(api, target=new_id, action="create_api_key")
    assert created["detail"]["role"] == "viewer"
    assert r.json()["key"] not in str(created)
    assert _one(api, target=new_id, action="revoke_api_key")["outcome"] == "ok"

    # Through the operator API, recorded once, by the alerts service that made the change.
    r = api.post("/v1/webhooks", json={"url": "https://hooks.example.org/a", "enabled": False})
    sub_id = r.json()["id"]
    api.delete(f"/v1/webhooks/{sub_id}")
    assert [e["action"] for e in _entries(api, target=sub_id)] == [
        "delete_webhook",
        "create_webhook",
    ]


def test_failures_and_refusals_are_recorded_too(
    api: httpx.Client, role_keys: dict[str, str]
) -> None:
    missing = f"missing-{uuid.uuid4().hex[:10]}"
    assert api.delete(f"/v1/devices/{missing}").status_code == 404
    failed = _one(api, target=missing)
    assert (failed["action"], failed["outcome"]) == ("delete_device", "failed")
    assert failed["detail"]["status"] == 404

    viewer = role_keys["viewer"]
    r = api.delete(f"/v1/devices/{missing}", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 403
    denied = _one(api, target=missing, outcome="denied")
    assert (denied["key_id"], denied["role"]) == (key_id_of(viewer), "viewer")

    operator = role_keys["operator"]
    alert_id = f"alert-{uuid.uuid4().hex[:10]}"
    r = api.post(f"/v1/alerts/{alert_id}/ack", headers={"Authorization": f"Bearer {operator}"})
    assert r.status_code == 404
    ack = _one(api, target=alert_id)
    assert (ack["action"], ack["role"], ack["outcome"]) == ("acknowledge", "operator", "failed")


def test_the_log_filters_by_key_and_time_and_pages_backwards(
    api: httpx.Client, role_keys: dict[str, str]
) -> None:
    operator = role_keys["operator"]
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [f"page-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    for alert_id in ids:
        api.post(f"/v1/alerts/{alert_id}/resolve", headers={"Authorization": f"Bearer {operator}"})
    mine = {"key_id": key_id_of(operator), "action": "resolve", "start": before.isoformat()}
    first = _entries(api, **mine, limit=3)
    assert [e["target"] for e in first] == ids[::-1][:3]
    rest = _entries(api, **mine, limit=3, before_id=first[-1]["id"])
    assert [e["target"] for e in rest] == ids[::-1][3:]
    assert _entries(api, **mine, end=before.isoformat()) == []


def test_the_log_is_append_only_even_for_the_services_database_role(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    api.delete(f"/v1/devices/missing-{uuid.uuid4().hex[:8]}")
    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
        for sql in (
            "UPDATE audit_log SET outcome = 'ok'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql)
