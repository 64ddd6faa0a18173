"""shared.throttle: the failure throttle's windows and the concurrency caps' slots, in process."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from shared.throttle import ConcurrencyCaps, FailureThrottle, RouteClass

pytestmark = pytest.mark.unit


def test_a_source_is_throttled_after_its_allowance_and_others_are_not() -> None:
    throttle = FailureThrottle(per_source=3, per_key=100, window_s=60)
    for i in range(3):
        assert throttle.source_retry_after("192.0.2.1") is None
        throttle.failed(source="192.0.2.1", key_id=f"id{i}")
    wait = throttle.source_retry_after("192.0.2.1")
    assert wait is not None and 0 < wait <= 60
    assert throttle.source_retry_after("192.0.2.2") is None


def test_a_key_id_is_throttled_across_sources() -> None:
    throttle = FailureThrottle(per_source=100, per_key=3, window_s=60)
    for i in range(3):
        throttle.failed(source=f"192.0.2.{i}", key_id="target")
    assert throttle.key_retry_after("target") is not None
    assert throttle.key_retry_after("other") is None


class Held:
    """An app whose requests wait until released: slots stay taken as long as the test says."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0
        self._arrived = asyncio.Condition()

    async def until_entered(self, n: int) -> None:
        async with self._arrived:
            await self._arrived.wait_for(lambda: self.entered >= n)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._arrived:
            self.entered += 1
            self._arrived.notify_all()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def test_a_full_class_answers_503_with_retry_after_and_leaves_the_others_alone() -> None:
    held = Held()
    caps = ConcurrencyCaps(
        held,
        classes=[RouteClass("open-data", 2, lambda p: p.startswith("/open-data/"))],
        default=RouteClass("other", 1, lambda p: True),
        exempt=("/healthz",),
        retry_after_s=3,
    )
    transport = httpx.ASGITransport(app=caps)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        downloads = [asyncio.create_task(client.get("/open-data/x.csv")) for _ in range(2)]
        await held.until_entered(2)
        refused = await client.get("/open-data/y.csv")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "3"
        assert "open-data" in refused.json()["detail"]
        # Another class still has its slot; probes are never capped.
        operator = asyncio.create_task(client.get("/v1/devices"))
        probe = asyncio.create_task(client.get("/healthz"))
        await held.until_entered(4)
        held.release.set()
        assert [r.status_code for r in await asyncio.gather(*downloads)] == [200, 200]
        assert (await operator).status_code == 200
        assert (await probe).status_code == 200
        # Slots are given back once the answers are sent.
        assert (await client.get("/open-data/z.csv")).status_code == 200
