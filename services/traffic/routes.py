"""Traffic API, served under the operator API's /v1/traffic (same keys, same conventions)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from services.traffic.adapters import db
from services.traffic.settings import TrafficSettings
from shared.http import AppPool, Viewer, settings_of, time_window

router = APIRouter(prefix="/v1/traffic", tags=["traffic"])
Settings = Annotated[TrafficSettings, Depends(settings_of(TrafficSettings))]

BUCKETS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1)}


@router.get("/counters/{device_id}/flow")
async def counter_flow(
    device_id: str,
    pool: AppPool,
    settings: Settings,
    _: Viewer,
    start: datetime | None = None,
    end: datetime | None = None,
    bucket: str = "1h",
    limit: Annotated[int, Query(ge=1, le=20000)] = 5000,
) -> dict[str, Any]:
    """Vehicles and mean speed per bucket (15m, 1h, 1d), observed vs expected."""
    if bucket not in BUCKETS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"bucket: one of {list(BUCKETS)}")
    start, end = time_window(start, end, default_span=timedelta(days=1))
    async with pool.connection() as conn:
        rows = await db.flow(
            conn,
            device_id=device_id,
            start=start,
            end=end,
            width=BUCKETS[bucket],
            limit=limit,
            zone=settings.timezone,
        )
    return {"device_id": device_id, "bucket": bucket, "start": start, "end": end, "items": rows}


@router.get("/counters/{device_id}/forecast")
async def counter_forecast(device_id: str, pool: AppPool, _: Viewer) -> dict[str, Any]:
    """The latest forecast of the next hour, per 15-minute step, with a ~90% interval."""
    async with pool.connection() as conn:
        rows = await db.forecast(conn, device_id=device_id)
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no forecast for this counter yet")
    return {"device_id": device_id, "issued_at": rows[0]["issued_at"], "steps": rows}


@router.get("/incidents")
async def list_incidents(
    pool: AppPool,
    _: Viewer,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> dict[str, Any]:
    """Episodes (incidents, congestion, unusual flow, silences) overlapping [start, end]."""
    start, end = time_window(start, end, default_span=timedelta(days=7))
    async with pool.connection() as conn:
        rows = await db.incidents(conn, start=start, end=end, kind=kind, limit=limit)
    return {"start": start, "end": end, "items": rows}
