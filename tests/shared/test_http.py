"""Unit tests for shared.http: the Gate's order (size, key, body) and the route role checks.

Apps are built in process; nothing here reaches a database (the paths tested stop before the
key lookup), the integration tests in tests/test_gate.py cover the rest on the real stack.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from shared.http import Admin, Operator, Viewer, check_time, secure, time_window
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit

SETTINGS = ServiceSettings(dev_mode=True, max_body_bytes=2048)


class Body(BaseModel):
    name: str


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/things")
    async def make(body: Body, _: Admin) -> dict[str, str]:
        return {"name": body.name}

    @app.get("/things")
    async def read(_: Viewer) -> list[str]:
        return []

    @app.post("/things/act")
    async def act(_: Operator) -> dict[str, str]:
        return {}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    secure(app, settings=SETTINGS)
    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t")


async def test_a_malformed_body_without_a_key_gets_401_not_422(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/things", content=b"{not json", headers={"content-type": "x/y"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


async def test_an_oversized_body_gets_413_before_the_key_is_looked_at(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/things", content=b"x" * 4096)
    assert r.status_code == 413, r.text


async def test_a_malformed_content_length_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/things", content=b"{}", headers={"content-length": "-1"})
    assert r.status_code == 400


async def test_a_key_that_is_not_ours_is_refused_without_a_lookup(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/things", headers={"Authorization": "Bearer not-a-townpulse-key"})
    assert r.status_code == 401
    assert r.json()["detail"] == "malformed API key"


async def test_public_paths_need_no_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200


def test_the_openapi_document_says_each_operations_role() -> None:
    doc = _app().openapi()
    assert doc["paths"]["/things"]["post"]["x-required-role"] == "admin"
    assert doc["paths"]["/things"]["get"]["x-required-role"] == "viewer"
    assert doc["paths"]["/things/act"]["post"]["x-required-role"] == "operator"
    assert "x-required-role" not in doc["paths"]["/healthz"]["get"]


def test_a_route_without_a_role_stops_the_service_from_starting() -> None:
    app = FastAPI()

    @app.get("/open")
    async def forgot() -> None:
        return None

    with pytest.raises(RuntimeError, match="no role"):
        secure(app, settings=SETTINGS)


def test_a_write_open_to_viewers_stops_the_service_from_starting() -> None:
    app = FastAPI()

    @app.delete("/things/{x}")
    async def oops(x: str, _: Viewer) -> None:
        return None

    with pytest.raises(RuntimeError, match="viewers only read"):
        secure(app, settings=SETTINGS)


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1999, 12, 31, tzinfo=UTC),
        datetime.now(UTC) + timedelta(days=400),
        datetime(2026, 1, 1),  # noqa: DTZ001 - naive on purpose
    ],
)
def test_times_outside_the_plausible_range_are_refused(value: datetime) -> None:
    with pytest.raises(HTTPException) as err:
        check_time(value, "end")
    assert err.value.status_code == 422


def test_a_window_is_bounded_and_ordered() -> None:
    end = datetime.now(UTC)
    with pytest.raises(HTTPException, match="at most 400 days"):
        time_window(end - timedelta(days=401), end, default_span=timedelta(days=1))
    with pytest.raises(HTTPException):
        time_window(end, end - timedelta(hours=1), default_span=timedelta(days=1))
    start, got_end = time_window(None, end, default_span=timedelta(days=2))
    assert got_end - start == timedelta(days=2)
