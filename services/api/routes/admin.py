"""Dead letters, API keys and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from services.api.adapters import repository as repo
from services.api.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut, AuditEntry, DeadLetterOut
from shared import audit
from shared.auth import new_api_key
from shared.http import Admin, AppKeyRing, AppPool, Viewer, check_time

router = APIRouter(prefix="/v1", tags=["operations"])


@router.get("/deadletters", response_model=list[DeadLetterOut])
async def list_deadletters(
    pool: AppPool,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    reason: str | None = None,
    device_id: str | None = None,
) -> list[DeadLetterOut]:
    """Rejected messages, newest first, with the reason and the (truncated) payload."""
    async with pool.connection() as conn:
        rows = await repo.deadletters(conn, limit=limit, reason=reason, device_id=device_id)
    return [DeadLetterOut(**r) for r in rows]


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_api_key(
    body: ApiKeyIn, request: Request, pool: AppPool, keyring: AppKeyRing, _: Admin
) -> ApiKeyCreated:
    """Create an API key; the key itself is in this response only."""
    key = new_api_key()
    request.state.audit_target = key.key_id
    request.state.audit_detail = {"name": body.name, "role": body.role.value}
    async with pool.connection() as conn:
        row = await repo.insert_api_key(
            conn, key_id=key.key_id, name=body.name, role=body.role.value, key_hash=key.key_hash
        )
    # Committed above: usable at once, even on the next request (shared/keyring.py).
    keyring.remember(key.key_id, key.key_hash, body.role)
    return ApiKeyCreated(**row, key=key.token)


@router.get("/api-keys", response_model=list[ApiKeyOut])
async def list_api_keys(pool: AppPool, _: Admin) -> list[ApiKeyOut]:
    """Every key (never the secret part)."""
    async with pool.connection() as conn:
        return [ApiKeyOut(**r) for r in await repo.api_keys(conn)]


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    key_id: str, pool: AppPool, keyring: AppKeyRing, principal: Admin
) -> Response:
    """Revoke a key at once."""
    if key_id == principal.key_id:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="a key cannot revoke itself")
    async with pool.connection() as conn:
        revoked = await repo.revoke_api_key(conn, key_id)
    if not revoked:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such active key")
    # Committed above: this process's copy of the keys drops it now (shared/keyring.py).
    keyring.forget(key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/audit", response_model=list[AuditEntry])
async def list_audit(
    pool: AppPool,
    _: Admin,
    action: Annotated[str | None, Query(max_length=100)] = None,
    key_id: Annotated[str | None, Query(max_length=100)] = None,
    target: Annotated[str | None, Query(max_length=500)] = None,
    outcome: Annotated[str | None, Query(pattern="^(ok|denied|failed)$")] = None,
    start: datetime | None = None,
    end: datetime | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntry]:
    """Audit entries, newest first; page with `before_id` = the last id of the previous page."""
    async with pool.connection() as conn:
        rows = await audit.entries(
            conn,
            action=action,
            key_id=key_id,
            target=target,
            outcome=outcome,
            start=check_time(start, "start"),
            end=check_time(end, "end"),
            before_id=before_id,
            limit=limit,
        )
    return [AuditEntry(**r) for r in rows]
