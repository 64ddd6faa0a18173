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


@router.api_route("/v1/{domain}/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def forward(domain: str, path: str, request: Request) -> Response:
    upstreams: dict[str, str] = request.app.state.settings.upstreams
    base = upstreams.get(domain)
    if base is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Not Found")
    client: httpx.AsyncClient = request.app.state.http
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    try:
        upstream = await client.request(
            request.method,
            f"{base.rstrip('/')}/v1/{domain}/{path}",
            params=request.query_params,
            headers=headers,
            content=await request.body(),
        )
    except httpx.HTTPError as exc:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, detail=f"{domain} service unreachable"
        ) from exc
    return Response(
        content=upstream.content,
        status_code=upstream.status_code,
        headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
    )
