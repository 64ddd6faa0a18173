"""The Gate and the bounds on every running service: size before key, key before body,
bounded time ranges, 401s logged with their source and without the key, statement timeout.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr

from shared.db import create_pool
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

# Services with routes that take bodies or keys (gateway and storage serve probes only).
SECURED = ("api", "alerts", "energy", "waste", "traffic")
# One read per service with a time range, reached directly.
RANGED = {
    "api": "/v1/devices/no-such-device/readings",
    "alerts": "/v1/alerts",
    "energy": "/v1/energy/meters/no-such-meter/anomalies",
    "waste": "/v1/waste/bins/no-such-bin",
    "traffic": "/v1/traffic/incidents",
}


@pytest.mark.parametrize("service", SECURED)
def test_a_malformed_post_without_a_key_gets_401(
    service: str, service_urls: dict[str, str]
) -> None:
    r = httpx.post(f"{service_urls[service]}/v1/anything", content=b"{not json", timeout=30)
    assert r.status_code == 401, r.text


@pytest.mark.parametrize("service", SECURED)
def test_an_oversized_body_gets_413_before_authentication(
    service: str, service_urls: dict[str, str]
) -> None:
    r = httpx.post(f"{service_urls[service]}/v1/anything", content=b"x" * (2 << 20), timeout=30)
    assert r.status_code == 413, r.text


def _chunks() -> Iterator[bytes]:
    for _ in range(40):
        yield b"x" * 65536


@pytest.mark.parametrize("service", SECURED)
def test_an_oversized_body_without_a_length_gets_413_too(
    service: str, service_urls: dict[str, str], admin_key: str
) -> None:
    r = httpx.post(
        f"{service_urls[service]}/v1/anything",
        content=_chunks(),
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text


@pytest.mark.parametrize("service", SECURED)
@pytest.mark.parametrize("end", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00"])
def test_absurd_times_get_422_not_500(
    service: str, end: str, service_urls: dict[str, str], admin_key: str
) -> None:
    r = httpx.get(
        service_urls[service] + RANGED[service],
        params={"end": end},
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    assert r.status_code == 422, r.text


def test_a_range_longer_than_the_cap_gets_422(api: httpx.Client) -> None:
    r = api.get(
        "/v1/devices/no-such-device/readings",
        params={"start": "2024-01-01T00:00:00Z", "end": "2025-06-01T00:00:00Z"},
    )
    assert r.status_code == 422
    assert "at most 400 days" in r.text


def test_401s_are_logged_with_the_source_and_never_the_key(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    secret = "SecretPartThatMustNeverBeLogged0123"
    r = httpx.get(
        f"{stack_env['API_URL']}/v1/devices",
        headers={"Authorization": f"Bearer tp_0a0a0a0a0a0a_{secret}"},
        timeout=30,
    )
    assert r.status_code == 401
    log = (stack.logs / "api.log").read_text(errors="replace")
    lines = [line for line in log.splitlines() if "0a0a0a0a0a0a" in line]
    assert lines, "no 401 line"
    assert "from 127.0.0.1" in lines[-1]
    assert secret not in log


RAW_ESCAPES = [
    "/v1/energy/%2e%2e/%2e%2e/metrics",
    "/v1/energy/%2E%2E/%2E%2E/readyz",
    "/v1/energy/../../metrics",
    "/v1/energy/./summary",
    "/v1/energy/..%2f..%2fmetrics",
    "/v1/energy/..%5c..%5cmetrics",
    "/v1/energy/..\\..\\metrics",
]


@pytest.mark.parametrize("path", RAW_ESCAPES)
def test_the_proxy_refuses_dot_segments(
    path: str, stack_env: dict[str, str], admin_key: str
) -> None:
    # http.client sends the path byte for byte (httpx would normalise the dot segments away).
    url = urlsplit(stack_env["API_URL"])
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {admin_key}"})
        response = conn.getresponse()
        body = response.read().decode()
    finally:
        conn.close()
    assert response.status == 400, (path, response.status, body)


async def test_pool_connections_carry_a_statement_timeout(stack_env: dict[str, str]) -> None:
    pool = create_pool(SecretStr(stack_env["DATABASE_URL"]), max_size=1)
    await pool.open()
    try:
        async with pool.connection() as conn:
            cur = await conn.execute("SHOW statement_timeout")
            row = await cur.fetchone()
            assert row is not None and row["statement_timeout"] == "30s"
    finally:
        await pool.close()
