"""The operator API's forwarding of HTTP push (`/v1/ingest/...`) to the gateway, in process: a
fake gateway behind httpx's mock transport, no database or broker (public paths never reach the
key lookup)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.api.app import create_app
from services.api.settings import ApiSettings
from townpulse.stack.config import SERVICES

pytestmark = pytest.mark.unit

GATEWAY = "http://gateway.test"
SETTINGS = ApiSettings(dev_mode=True, upstreams={"ingest": GATEWAY, "integrations": GATEWAY})


class FakeGateway:
    """Answers what it is told to and keeps what it was sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = httpx.Response(202, json={"accepted": 1})
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        self.requests.append(request)
        return self.answer


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
async def client(gateway: FakeGateway) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SETTINGS)
    # What the lifespan would open: only the upstream client is used on these paths.
    app.state.http = httpx.AsyncClient(transport=httpx.MockTransport(gateway))
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c
    await app.state.http.aclose()


async def test_http_push_is_forwarded_without_an_api_key_with_its_own_secret(
    client: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    r = await client.post(
        "/v1/ingest/chirpstack/town-cs",
        params={"event": "up"},
        content=b'{"deviceInfo": {}}',
        headers={"Authorization": "Bearer cs-secret", "Content-Type": "application/json"},
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 1}
    (sent,) = gateway.requests
    assert str(sent.url) == f"{GATEWAY}/v1/ingest/chirpstack/town-cs?event=up"
    assert sent.method == "POST"
    assert sent.content == b'{"deviceInfo": {}}'
    assert sent.headers["authorization"] == "Bearer cs-secret"
    assert sent.headers["x-forwarded-for"] == "198.51.100.7"


async def test_the_gateways_503_and_retry_after_reach_the_sender(
    client: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    gateway.answer = httpx.Response(
        503, json={"detail": "Kafka unavailable"}, headers={"Retry-After": "7"}
    )
    r = await client.post("/v1/ingest/devices/meter-1", content=b"{}")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "7"


async def test_an_unreachable_gateway_is_a_503_to_retry(
    client: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    gateway.down = True
    r = await client.post("/v1/ingest/tts/town-tts", content=b"{}")
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) > 0


async def test_a_body_over_the_ingest_cap_is_refused_before_the_gateway(
    client: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    at_cap = b"x" * SETTINGS.ingest_max_body_bytes
    assert (await client.post("/v1/ingest/devices/meter-1", content=at_cap)).status_code == 202
    r = await client.post("/v1/ingest/devices/meter-1", content=at_cap + b"x")
    assert r.status_code == 413
    assert len(gateway.requests) == 1


@pytest.mark.parametrize(
    "path",
    ["/v1/ingest/devices/%2e%2e/%2e%2e/metrics", "/v1/ingest/devices/a%2Fb", "/v1/ingest/a%5Cb"],
)
async def test_escaping_paths_are_refused(
    client: httpx.AsyncClient, gateway: FakeGateway, path: str
) -> None:
    r = await client.post(path, content=b"{}")
    assert r.status_code == 400
    assert gateway.requests == []


async def test_only_ingest_is_open_the_operators_routes_still_need_a_key(
    client: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    assert (await client.get("/v1/integrations")).status_code == 401
    assert (await client.post("/v1/integrations", json={})).status_code == 401
    # Reading or changing anything else under /v1/ingest is not push: not open either.
    assert (await client.get("/v1/ingest/devices/meter-1")).status_code == 401
    assert gateway.requests == []


def test_the_stack_forwards_the_sensor_routes_to_the_gateway() -> None:
    routes = {route: spec.name for spec in SERVICES for route in spec.routes}
    for route in ("integrations", "heard-devices", "codecs", "profiles", "ingest"):
        assert routes[route] == "gateway", route
