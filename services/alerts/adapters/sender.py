"""One HTTP delivery attempt: signed POST, bounded in time and in response size."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from services.alerts.domain import webhooks


@dataclass(frozen=True, slots=True)
class AttemptResult:
    started_at: datetime
    latency_s: float
    status_code: int | None
    error: str | None
    retry_after_s: float | None


async def send(
    client: httpx.AsyncClient,
    *,
    url: str,
    msg_id: str,
    body: str,
    secrets: Sequence[str],
    timeout_s: float,
    max_response_bytes: int,
) -> AttemptResult:
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    # Signed at each attempt: the timestamp is the attempt's, as receivers check its freshness.
    headers = webhooks.headers(secrets, msg_id=msg_id, timestamp=int(time.time()), body=body)
    status: int | None = None
    error: str | None = None
    retry_after: str | None = None
    try:
        # The whole attempt, not each read: a receiver trickling bytes cannot hold a slot longer.
        async with (
            asyncio.timeout(timeout_s),
            client.stream("POST", url, content=body.encode(), headers=headers) as response,
        ):
            status, retry_after = response.status_code, response.headers.get("retry-after")
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= max_response_bytes:
                    break  # the rest is not ours to read: the connection is dropped
    except TimeoutError:
        error = f"timeout after {timeout_s:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300] if status is None else None
    return AttemptResult(
        started_at=started_at,
        latency_s=time.perf_counter() - t0,
        status_code=status,
        error=error,
        retry_after_s=webhooks.parse_retry_after(retry_after, now=started_at),
    )
