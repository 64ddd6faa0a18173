"""One HTTP delivery attempt: signed POST, bounded in time and in response size.

The target's host is resolved here, each address checked (services/alerts/domain/targets.py),
and the connection made to the address that was checked: a name that resolved to a public
address when the webhook was created and to 127.0.0.1 now (DNS rebinding) is refused, and no
second lookup happens between the check and the connection.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from services.alerts.domain import targets, webhooks


class TargetRefused(Exception):
    pass


async def pinned(
    url: str, *, allowed: Sequence[targets.IPNetwork]
) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The URL with its host replaced by a checked address, the Host header, the TLS name."""
    parsed = httpx.URL(url)
    host = parsed.host
    addr = targets.literal_address(host)
    if addr is not None:
        addresses = [addr]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host,
                parsed.port or (443 if parsed.scheme == "https" else 80),
                type=socket.SOCK_STREAM,
            )
        except OSError as exc:
            raise TargetRefused(f"cannot resolve {host}: {exc}") from exc
        resolved = [targets.literal_address(str(info[4][0])) for info in infos]
        addresses = [a for a in resolved if a is not None]
        if not addresses:
            raise TargetRefused(f"{host} resolves to no address")
    # Every address, not just the first: a name answering with a mix is refused outright.
    for candidate in addresses:
        if reason := targets.forbidden_reason(candidate, allowed=allowed):
            raise TargetRefused(f"target refused: {host} is a {reason}")
    headers = {"Host": parsed.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if parsed.scheme == "https" and addr is None else {}
    return parsed.copy_with(host=str(addresses[0])), headers, extensions


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
    allowed_networks: Sequence[targets.IPNetwork] = (),
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
        async with asyncio.timeout(timeout_s):
            target, host_header, extensions = await pinned(url, allowed=allowed_networks)
            async with client.stream(
                "POST",
                target,
                content=body.encode(),
                headers={**headers, **host_header},
                extensions=extensions,
            ) as response:
                status, retry_after = response.status_code, response.headers.get("retry-after")
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= max_response_bytes:
                        break  # the rest is not ours to read: the connection is dropped
    except TargetRefused as exc:
        error = str(exc)[:300]
    except TimeoutError:
        error = f"timeout after {timeout_s:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300] if status is None else None
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        # A URL stored before shared.inputs.OutboundUrl checked it: a failed attempt (which the
        # delivery log shows), not a crash of the dispatcher or a 500 on a test-send.
        error = f"invalid URL: {exc}"[:300]
    return AttemptResult(
        started_at=started_at,
        latency_s=time.perf_counter() - t0,
        status_code=status,
        error=error,
        retry_after_s=webhooks.parse_retry_after(retry_after, now=started_at),
    )
