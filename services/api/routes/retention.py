"""What the town keeps, and for how long."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.api.deps import Settings
from services.api.schemas import RetentionClass
from shared import retention
from shared.http import AppPool, Principal, require_admin

router = APIRouter(prefix="/v1/admin", tags=["operations"])

Admin = Annotated[Principal, Depends(require_admin)]


@router.get("/retention", response_model=list[RetentionClass])
async def get_retention(pool: AppPool, settings: Settings, _: Admin) -> list[RetentionClass]:
    """Each data class: its retention period, how it is enforced, the oldest row kept."""
    async with pool.connection() as conn:
        rows = await retention.report(conn, settings.retention)
    return [RetentionClass(**r) for r in rows]
