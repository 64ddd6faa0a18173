"""Limits on what one client can cost a service: failed key checks, concurrent requests.

`FailureThrottle` counts failed API-key checks per source address and per key id in a moving
window (the `limits` package, in memory: each process throttles what it sees, which is what
matters for what it can be made to spend). `ConcurrencyCaps` bounds the requests of each route
class in flight at once, so that public downloads or the waste solver cannot take every database
connection or worker from the operators' other routes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

CAPPED = Counter(
    "townpulse_http_capped_total",
    "Requests refused (503) because their route class was at its concurrency cap",
    ["route_class"],
)


class FailureThrottle:
    """Failed key checks per source and per key id; past the limit, 429 with Retry-After.

    >>> t = FailureThrottle(per_source=2, per_key=3, window_s=60)
    >>> t.failed(source="192.0.2.1", key_id="abc"), t.failed(source="192.0.2.1", key_id="abc")
    (False, True)
    >>> 0 < t.source_retry_after("192.0.2.1") <= 60, t.source_retry_after("192.0.2.2")
    (True, None)
    >>> t.key_retry_after("abc") is None  # two failures of three allowed
    True
    """

    def __init__(self, *, per_source: int, per_key: int, window_s: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_source = RateLimitItemPerSecond(per_source, window_s)
        self._per_key = RateLimitItemPerSecond(per_key, window_s)

    def source_retry_after(self, source: str) -> int | None:
        """Seconds before `source` may try a key again, or None if it may now."""
        return self._retry_after(self._per_source, "source", source)

    def key_retry_after(self, key_id: str) -> int | None:
        """Seconds before a wrong secret for `key_id` is answered 401 again, or None."""
        return self._retry_after(self._per_key, "key", key_id)

    def failed(self, *, source: str, key_id: str | None) -> bool:
        """Count a failed check; True if it used up the source's or the key's allowance."""
        self._limiter.hit(self._per_source, "source", source)
        crossed = not self._limiter.test(self._per_source, "source", source)
        if key_id is not None:
            self._limiter.hit(self._per_key, "key", key_id)
            crossed |= not self._limiter.test(self._per_key, "key", key_id)
        return crossed

    def _retry_after(self, item: RateLimitItemPerSecond, *ids: str) -> int | None:
        if self._limiter.test(item, *ids):
            return None
        reset = self._limiter.get_window_stats(item, *ids).reset_time
        return max(1, math.ceil(reset - time.time()))


@dataclass(frozen=True, slots=True)
class RouteClass:
    """Requests whose path `matches` share `size` slots."""

    name: str
    size: int
    matches: Callable[[str], bool]


class ConcurrencyCaps:
    """ASGI middleware: each route class has its slots; a request finding them all taken is
    answered 503 with Retry-After at once, rather than queued behind the others (a queue would
    only move the wait into the client's time-out). `exempt` paths (probes) are never capped.

    A class's slot is held until the response's last byte is sent: a download is work for as
    long as it streams.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        classes: Sequence[RouteClass],
        default: RouteClass,
        exempt: tuple[str, ...],
        retry_after_s: int,
    ) -> None:
        self.app = app
        self._classes = [(c, asyncio.Semaphore(c.size)) for c in (*classes, default)]
        self._exempt = exempt
        self._retry_after = str(retry_after_s).encode()

    def route_class(self, path: str) -> tuple[RouteClass, asyncio.Semaphore]:
        # The default class, last, takes whatever no other class claimed.
        return next(((c, s) for c, s in self._classes[:-1] if c.matches(path)), self._classes[-1])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        cls, slots = self.route_class(scope["path"])
        if slots.locked():
            CAPPED.labels(cls.name).inc()
            body = f'{{"detail": "too many {cls.name} requests at once; retry shortly"}}'.encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", self._retry_after),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        async with slots:
            await self.app(scope, receive, send)
