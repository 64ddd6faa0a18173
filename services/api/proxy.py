"""Forwarding `/v1/<domain>/...` to the domain services, so operators need only API_URL.

The operator's Authorization header is passed on unchanged: each domain service checks the key
(and the role its route needs) against the same api_keys table.

`/v1/ingest/...` (HTTP push from network servers, vendors' clouds and devices) is forwarded to
the gateway without an API key: senders hold no key, the gateway checks their own secrets (an
integration's, a device's ingest token) in the Authorization header passed on. Its bodies are
capped lower than the operators', and its answers (202, 503 with Retry-After) go back as they
are.

Only paths that stay under `/v1/<segment>/` are forwarded: a dot segment (`..`, `%2e%2e`), a
backslash or an encoded slash could make the upstream resolve a path outside it (its
unauthenticated /metrics, say), so they are refused with 400 before anything is sent.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import httpx
from fastapi import APIRouter, HTTPException, Request, Response, status

from services.api.deps import Settings, Upstream
from services.api.settings import ApiSettings
from shared.http import Viewer

router = APIRouter(tags=["domain services"], include_in_schema=False)

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
    "content-length",
}


METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


# Encoded '.', '/' and '\\' (any case), and the characters themselves where they do not belong.
ENCODED = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)


def unsafe_path(raw_path: str) -> str | None:
    r"""Why a raw request path must not be forwarded, or None.

    >>> unsafe_path("/v1/energy/summary") is None
    True
    >>> unsafe_path("/v1/energy/%2e%2e/%2E%2E/metrics")
    'encoded dot, slash or backslash in the path'
    >>> unsafe_path("/v1/energy/../metrics")
    'dot segment in the path'
    >>> unsafe_path("/v1/energy/a\\b")
    'backslash in the path'
    """
    if ENCODED.search(raw_path):
        return "encoded dot, slash or backslash in the path"
    decoded = unquote(raw_path)
    if "\\" in decoded:
        return "backslash in the path"
    if any(part in (".", "..") for part in decoded.split("/")):
        return "dot segment in the path"
    return None


INGEST = "ingest"
INGEST_PATH = f"/v1/{INGEST}/"


@router.post("/v1/ingest/{path:path}")
async def forward_ingest(
    request: Request, settings: Settings, client: Upstream, path: str
) -> Response:
    """Forward an HTTP push to the gateway (no API key: public in app.py)."""
    body = await request.body()
    if len(body) > settings.ingest_max_body_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"body over {settings.ingest_max_body_bytes} bytes",
        )
    try:
        return await _forward(request, settings=settings, client=client, segment=INGEST, body=body)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_502_BAD_GATEWAY:
            raise
        # A sender retries a 503 after Retry-After, as when the gateway's Kafka is down.
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="gateway unreachable",
            headers={"Retry-After": str(INGEST_RETRY_AFTER_S)},
        ) from exc


# A gateway restarting (the keeper's back-off) is back within seconds.
INGEST_RETRY_AFTER_S = 5


@router.api_route("/v1/{segment}", methods=METHODS)
@router.api_route("/v1/{segment}/{path:path}", methods=METHODS)
async def forward(
    segment: str,
    request: Request,
    settings: Settings,
    client: Upstream,
    _: Viewer,
    path: str = "",
) -> Response:
    """Forward to the domain service; any key passes here, the upstream checks its role."""
    body = await request.body()
    return await _forward(request, settings=settings, client=client, segment=segment, body=body)


async def _forward(
    request: Request,
    *,
    settings: ApiSettings,
    client: httpx.AsyncClient,
    segment: str,
    body: bytes,
) -> Response:
    reason = unsafe_path(request.scope.get("raw_path", b"").decode("latin-1"))
    if reason is not None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=reason)
    base = settings.upstreams.get(segment)
    if base is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Not Found")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    # The client's address (as uvicorn resolved it, a trusted proxy's X-Forwarded-For
    # included), for the upstream's log of refusals and its throttling per source
    # (shared/throttle.py): otherwise every client would be this API's own address there.
    headers["x-forwarded-for"] = request.client.host if request.client else "?"
    try:
        upstream = await client.request(
            request.method,
            f"{base.rstrip('/')}{request.url.path}",
            params=request.query_params,
            headers=headers,
            content=body,
        )
    except httpx.HTTPError as exc:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, detail=f"{segment} service unreachable"
        ) from exc
    return Response(
        content=upstream.content,
        status_code=upstream.status_code,
        headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
    )


async def public_json(
    client: httpx.AsyncClient,
    settings: ApiSettings,
    *,
    segment: str,
    path: str,
    params: dict[str, str],
) -> dict[str, Any]:
    """GET a route a domain service serves without a key (an open-data dataset's rows): its
    JSON answer; its refusal (a 4xx) passed on with its reason, 502 when it cannot answer."""
    base = settings.upstreams.get(segment)
    if base is None:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=f"no {segment} service")
    try:
        upstream = await client.get(f"{base.rstrip('/')}{path}", params=params)
    except httpx.HTTPError as exc:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, detail=f"{segment} service unreachable"
        ) from exc
    if 400 <= upstream.status_code < 500:
        try:
            detail = upstream.json().get("detail", "refused")
        except ValueError:
            detail = "refused"
        raise HTTPException(upstream.status_code, detail=detail)
    if upstream.status_code != status.HTTP_200_OK:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=f"{segment} service failed")
    body: dict[str, Any] = upstream.json()
    return body
