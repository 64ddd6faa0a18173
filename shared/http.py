"""HTTP plumbing shared by every service: health, readiness, metrics, API-key auth."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from shared.auth import key_id_of, key_matches
from shared.db import Pool
from shared.logging import configure_logging
from shared.settings import ServiceSettings
from shared.supervise import EXIT_TASK_DIED

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[None]]
# A dependency that does not answer in this time is reported as not ready, so /readyz itself
# answers well within a load balancer's or `townpulse status`'s own timeout.
READY_CHECK_TIMEOUT_S = 2.0


def observability_router(checks: Callable[[], dict[str, ReadyCheck]]) -> APIRouter:
    """`/healthz` (the process answers), `/readyz` (its dependencies do), `/metrics`."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves requests."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(response: Response) -> dict[str, Any]:
        """Readiness: every dependency answered."""
        results: dict[str, str] = {}
        for name, check in checks().items():
            try:
                await asyncio.wait_for(check(), READY_CHECK_TIMEOUT_S)
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in results.values())
        if not ok:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "ok" if ok else "unavailable", "checks": results}

    @router.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def check_pool(pool: Pool) -> None:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")


class Principal(BaseModel):
    key_id: str
    role: str


_bearer = HTTPBearer(auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def authenticate(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Resolve `Authorization: Bearer <api key>` against the api_keys table."""
    if creds is None:
        raise _unauthorized("missing API key")
    key_id = key_id_of(creds.credentials)
    if key_id is None:
        raise _unauthorized("malformed API key")
    pool: Pool = request.app.state.pool
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT role, key_hash FROM api_keys WHERE id = %s AND revoked_at IS NULL", (key_id,)
        )
        row = await cur.fetchone()
    if row is None or not key_matches(creds.credentials, bytes(row["key_hash"])):
        raise _unauthorized("invalid API key")
    return Principal(key_id=key_id, role=row["role"])


async def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="admin API key required")
    return principal


def utcnow() -> datetime:
    return datetime.now(UTC)


def serve(app: FastAPI, settings: ServiceSettings, *, service: str) -> None:
    """Run a service's app with uvicorn, logging as JSON.

    A supervised task that dies asks the server to stop (`app.state.on_fatal`), and the process
    then exits non-zero so that its process manager starts it again (shared/supervise.py).
    """
    configure_logging(service=service, level=settings.log_level)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            # Services sit behind the operator API or on localhost; keep-alive matches httpx
            # pools.
            timeout_keep_alive=30,
        )
    )
    fatal: list[bool] = []

    def on_fatal() -> None:
        fatal.append(True)
        server.should_exit = True

    app.state.on_fatal = on_fatal
    server.run()
    if fatal or not server.started:
        # Did not start (a dependency missing at start-up) or a task died: exit non-zero.
        sys.exit(EXIT_TASK_DIED)
