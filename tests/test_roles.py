"""Roles on every route of every service, read off each service's own OpenAPI document.

Each operation declares `x-required-role`; for each one, every role below it gets 403, every
role at or above it gets past authorisation, and no key at all gets 401. Requests use ids that
do not exist and empty bodies, so nothing is created or changed by this test.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.lighting.routes import SCHEDULE_PATH
from shared.auth import Role
from shared.http import PUBLIC_PATHS

pytestmark = pytest.mark.integration

WRITES = {"post", "put", "patch", "delete"}
# Open data, the register of algorithms, the HTTP push whose senders bring their own secrets
# (tests/services/gateway/), and the lighting schedule the town publishes (served without a key
# by the lighting service, which only the operator API reaches; through the API it needs one).
PUBLIC = (*PUBLIC_PATHS, "/open-data", "/register", "/v1/ingest", SCHEDULE_PATH)


def _public(path: str) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in PUBLIC)


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in WRITES | {"get"}
    ]


def _url(path: str, op: dict[str, Any]) -> str:
    for param in op.get("parameters", []):
        if param["in"] == "path":
            integer = param.get("schema", {}).get("type") == "integer"
            value = "999999999" if integer else "no-such-thing"
            path = path.replace("{" + param["name"] + "}", value)
    return path


@pytest.fixture(scope="module")
def documents(service_urls: dict[str, str]) -> dict[str, dict[str, Any]]:
    docs = {}
    for name, url in service_urls.items():
        r = httpx.get(f"{url}/openapi.json", timeout=30)
        assert r.status_code == 200, (name, r.text)
        docs[name] = r.json()
    return docs


def test_every_operation_declares_a_role_and_viewers_only_read(
    documents: dict[str, dict[str, Any]],
) -> None:
    checked = 0
    for name, doc in documents.items():
        for path, method, op in _operations(doc):
            if _public(path):
                assert "x-required-role" not in op, (name, method, path)
                continue
            role = op.get("x-required-role")
            assert role in {r.value for r in Role}, (name, method, path, role)
            if method in WRITES:
                assert role != Role.VIEWER, (name, method, path)
            checked += 1
    # The operator API, alerts and the three domain services all have protected routes.
    assert checked >= 30, checked


def test_each_role_is_refused_exactly_below_what_each_route_needs(
    documents: dict[str, dict[str, Any]],
    service_urls: dict[str, str],
    role_keys: dict[str, str],
) -> None:
    seen: dict[str, int] = {}
    for name, doc in documents.items():
        for path, method, op in _operations(doc):
            if _public(path):
                continue
            needed = Role(op["x-required-role"])
            url = service_urls[name] + _url(path, op)
            body = {} if method in {"post", "put", "patch"} else None
            r = httpx.request(method, url, json=body, timeout=30)
            assert r.status_code == 401, (method, url, r.status_code)
            for role in Role:
                r = httpx.request(
                    method,
                    url,
                    json=body,
                    headers={"Authorization": f"Bearer {role_keys[role.value]}"},
                    timeout=30,
                )
                if role.allows(needed):
                    assert r.status_code not in (401, 403), (role, method, url, r.text)
                else:
                    assert r.status_code == 403, (role, method, url, r.status_code, r.text)
                    assert needed.value in r.json()["detail"]
            seen[needed.value] = seen.get(needed.value, 0) + 1
    # Each role guards something: reads, alert actions, and administration.
    assert set(seen) == {"viewer", "operator", "admin"}, seen


def test_the_operator_api_forwards_the_upstreams_role_decision(
    api: httpx.Client, role_keys: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {role_keys['viewer']}"}
    r = api.post("/v1/alert-rules", json={}, headers=headers)
    assert r.status_code == 403, r.text
    r = api.post("/v1/alerts/no-such-alert/ack", json={}, headers=headers)
    assert r.status_code == 403, r.text
    r = api.post(
        "/v1/alerts/no-such-alert/ack",
        json={},
        headers={"Authorization": f"Bearer {role_keys['operator']}"},
    )
    assert r.status_code == 404, r.text
