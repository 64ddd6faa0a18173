"""Inputs checked at the edge, against the running stack: extreme days, non-finite numbers and
bad webhook URLs are 4xx with a reason (they were 500s or accepted); sign-in leads only to the
console's own pages; the open-data catalogue's links never come from the Host header.

`test_every_operation_survives_extreme_values` walks the OpenAPI document of every service (the
API and the services it proxies) deterministically: each date, time or number, in the query or
in a JSON body, gets the extremes; no 5xx anywhere, and a non-finite number is never accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.test_openapi_fuzz import FUZZED, api, fuzz_key  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

EXTREME_DAYS = ("0001-01-01", "9999-12-31")
EXTREME_TIMES = ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59+14:00")
NON_FINITE = ("NaN", "Infinity", "-Infinity", "nan", "inf")
HUGE = ("1e308", "-1e308", str(10**30), str(-(10**30)), "-1")


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)


@pytest.fixture(scope="module")
def admin(stack_env: dict[str, str], admin_key: str) -> Iterator[httpx.Client]:
    with _client(stack_env["API_URL"], admin_key) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "param"), [("/v1/energy/summary", "day"), ("/v1/waste/plan", "date")]
)
@pytest.mark.parametrize("value", EXTREME_DAYS)
def test_extreme_days_are_refused(admin: httpx.Client, path: str, param: str, value: str) -> None:
    r = admin.get(path, params={param: value, "depot": "48.85,2.35"})
    assert r.status_code == 422, r.text
    assert "2000" in r.text


@pytest.mark.parametrize("threshold", [*NON_FINITE, float("nan")])
def test_a_rule_threshold_must_be_finite(admin: httpx.Client, threshold: object) -> None:
    rule = {"domain": "waste", "metric": "fill_pct", "op": ">=", "threshold": 90}
    body = json.dumps({**rule, "threshold": threshold}, allow_nan=True)
    r = admin.post("/v1/alert-rules", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "finite" in r.text


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://1.2.3.256/", "not a valid IPv4 address"),
        ("http://hooks.example.org/\r\nX-Injected: 1", "control character"),
        ("http://hooks.example.org/a\nb", "control character"),
        ("http://user:pass@hooks.example.org/", "no credentials"),
        ("http://hooks.example.org:99999/", "not a valid URL"),
        ("http://bad_host!.example/", "not a valid name"),
        ("ftp://hooks.example.org/", "http:// or https://"),
    ],
)
def test_webhook_urls_are_checked_when_stored(admin: httpx.Client, url: str, reason: str) -> None:
    r = admin.post("/v1/webhooks", json={"url": url})
    assert r.status_code == 422, r.text
    assert reason in r.text


def test_a_stored_url_that_cannot_be_sent_to_is_a_failed_test_send(
    admin: httpx.Client, stack: Any
) -> None:
    """A URL stored before the check existed: the test-send reports it, no 500."""
    import psycopg

    r = admin.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "enabled": False})
    assert r.status_code == 201, r.text
    sub = r.json()["id"]
    try:
        for bad in ("http://1.2.3.256/", "http://127.0.0.1/\r\nX-Injected: 1"):
            with psycopg.connect(stack.database_url(), autocommit=True) as conn:
                conn.execute("UPDATE webhook_subscriptions SET url = %s WHERE id = %s", (bad, sub))
            r = admin.post(f"/v1/webhooks/{sub}/test")
            assert r.status_code == 200, r.text
            assert r.json()["delivered"] is False
            assert "invalid URL" in r.json()["error"]
    finally:
        admin.delete(f"/v1/webhooks/{sub}")


@pytest.mark.parametrize(
    "next_",
    [
        "/%5Cevil.example",
        "/\\evil.example",
        "//evil.example",
        "https://evil.example/",
        "/%2F%2Fevil.example",
        "javascript:alert(1)",
        "/nowhere",
    ],
)
def test_sign_in_leads_only_to_the_consoles_pages(stack_env: dict[str, str], next_: str) -> None:
    r = httpx.get(f"{stack_env['API_URL']}/signin", params={"next": next_}, timeout=30)
    assert r.status_code == 200
    assert re.search(r'data-next="/"', r.text), r.text[:2000]
    assert "evil" not in r.text


def test_sign_in_keeps_a_console_page_and_its_query(stack_env: dict[str, str]) -> None:
    r = httpx.get(
        f"{stack_env['API_URL']}/signin", params={"next": "/energy?meter=m-1"}, timeout=30
    )
    assert 'data-next="/energy?meter=m-1"' in r.text


def test_catalogue_links_ignore_the_host_header(stack_env: dict[str, str]) -> None:
    r = httpx.get(
        f"{stack_env['API_URL']}/open-data/", headers={"Host": "evil.example"}, timeout=30
    )
    assert r.status_code == 200
    assert "evil.example" not in r.text


# ---- the walk ------------------------------------------------------------------------------------

# Creating or changing an integration makes the gateway connect to the broker it names (see
# tests/schemathesis.toml); a dataset published by the walk would be public at once.
SKIPPED = (re.compile(r"^(POST|PATCH) /v1/integrations"), re.compile(r"^PUT /v1/open-data/"))


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def _kinds(doc: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """What a schema accepts: 'date', 'date-time', 'number', 'integer' (through anyOf)."""
    schema = _resolve(doc, schema)
    found = set()
    for option in schema.get("anyOf", [schema]):
        option = _resolve(doc, option)
        if option.get("format") in ("date", "date-time"):
            found.add(option["format"])
        elif option.get("type") in ("number", "integer"):
            found.add(option["type"])
    return found


def _probes(kinds: set[str]) -> list[tuple[str, bool]]:
    """(value as sent in a query, is it non-finite)."""
    values: list[tuple[str, bool]] = []
    if "date" in kinds:
        values += [(v, False) for v in EXTREME_DAYS]
    if "date-time" in kinds:
        values += [(v, False) for v in EXTREME_TIMES]
    if kinds & {"number", "integer"}:
        values += [(v, True) for v in NON_FINITE] + [(v, False) for v in HUGE]
    return values


def _placeholder(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A small valid-looking value for a required field the walk does not probe."""
    schema = _resolve(doc, schema)
    if "anyOf" in schema:
        return _placeholder(doc, schema["anyOf"][0])
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object":
        return {
            name: _placeholder(doc, sub)
            for name, sub in schema.get("properties", {}).items()
            if name in schema.get("required", [])
        }
    if kind == "array":
        return [] if not schema.get("minItems") else [_placeholder(doc, schema["items"])]
    if kind in ("number", "integer"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    return {
        "date": "2026-01-01",
        "date-time": "2026-01-01T00:00:00Z",
    }.get(schema.get("format", ""), "walk")


def _body_fields(doc: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str, set[str]]]:
    """Top-level fields of a JSON body that hold a date, a time or a number."""
    schema = _resolve(doc, schema)
    if "anyOf" in schema:
        schema = _resolve(doc, next(s for s in schema["anyOf"] if s.get("type") != "null"))
    return [
        (name, kinds)
        for name, sub in schema.get("properties", {}).items()
        if (kinds := _kinds(doc, sub))
    ]


def _requests(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], bool]]:
    """(method, path, httpx keyword arguments, non-finite) for every probe of the document."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if any(p.search(f"{method.upper()} {path}") for p in SKIPPED):
                continue
            concrete = re.sub(r"\{[^}]+\}", "walk-probe", path)
            params = [p for p in op.get("parameters", []) if p["in"] == "query"]
            required = {
                p["name"]: _placeholder(doc, p["schema"]) for p in params if p.get("required")
            }
            for p in params:
                for value, non_finite in _probes(_kinds(doc, p["schema"])):
                    query = {**required, p["name"]: value}
                    yield method, concrete, {"params": query}, non_finite
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                continue
            base = _placeholder(doc, content["schema"])
            if not isinstance(base, dict):
                continue
            for name, kinds in _body_fields(doc, content["schema"]):
                for value, non_finite in _probes(kinds):
                    # Numbers as JSON numbers (NaN/Infinity as the non-standard literals that
                    # Python's json reads) and as strings: pydantic accepts either.
                    literal = value if kinds & {"number", "integer"} else json.dumps(value)
                    raw = json.dumps({**base, name: "__probe__"}).replace('"__probe__"', literal)
                    headers = {"Content-Type": "application/json"}
                    yield method, concrete, {"content": raw, "headers": headers}, non_finite
                    quoted = json.dumps({**base, name: value})
                    yield method, concrete, {"content": quoted, "headers": headers}, non_finite


@pytest.mark.parametrize("service", FUZZED)
def test_every_operation_survives_extreme_values(
    service: str,
    service_urls: dict[str, str],
    fuzz_key: str,  # noqa: F811 - the fixture: what the walk creates is removed afterwards
) -> None:
    base = service_urls[service]
    doc = httpx.get(f"{base}/openapi.json", timeout=30).json()
    failures: list[str] = []
    sent = 0
    with _client(base, fuzz_key) as client:
        for method, path, kwargs, non_finite in _requests(doc):
            r = client.request(method.upper(), path, **kwargs)
            sent += 1
            shown = kwargs.get("params") or kwargs.get("content")
            if r.status_code >= 500:
                failures.append(f"{r.status_code} {method.upper()} {path} {shown}: {r.text[:200]}")
            elif non_finite and r.status_code < 400:
                failures.append(f"accepted {method.upper()} {path} {shown}: {r.status_code}")
    assert sent > 0 or service in ("storage",), f"{service}: nothing to probe"
    assert not failures, "\n".join(failures)


def test_the_walk_reaches_the_known_cases(stack_env: dict[str, str], admin_key: str) -> None:
    """The walk would have found the issue's 500s and the NaN threshold."""
    seen: set[tuple[str, str]] = set()
    for service_url in (stack_env["ENERGY_URL"], stack_env["WASTE_URL"], stack_env["ALERTS_URL"]):
        doc = httpx.get(f"{service_url}/openapi.json", timeout=30).json()
        for method, path, kwargs, _ in _requests(doc):
            text = str(kwargs.get("params") or kwargs.get("content"))
            if "9999-12-31" in text or "NaN" in text:
                seen.add((method.upper(), path))
    assert {
        ("GET", "/v1/energy/summary"),
        ("GET", "/v1/waste/plan"),
        ("POST", "/v1/alert-rules"),
    } <= seen
