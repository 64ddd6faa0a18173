"""Forwarding `/v1/<domain>/...` to the domain services, so operators need only API_URL.

The operator's Authorization header is passed on unchanged: each domain service checks the key
against the same api_keys table.
"""

from __future__ import annotations

import httpx
from fastapi import APIRouter, HTTPException, Request, Response, status

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


@router.api_route("/v1/{segment}", methods=METHODS)
@router.api_route("/v1/{segment}/{path:path}", methods=METHODS)
async def forward(segment: str, request: Request, path: str = "") -> Response:
    upstreams: dict[str, str] = request.app.state.settings.upstreams
    base = upstreams.get(segment)
    if base is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Not Found")
    client: httpx.AsyncClient = request.app.state.http
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    try:
        upstream = await client.request(
            request.method,
            f"{base.rstrip('/')}{request.url.path}",
            params=request.query_params,
            headers=headers,
            content=await request.body(),
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
