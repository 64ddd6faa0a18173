"""Energy API, served under the operator API's /v1/energy (same keys, same conventions)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from services.energy.adapters import db
from services.energy.settings import EnergySettings
from shared.http import AppPool, Viewer, settings_of, time_window
from shared.inputs import Day
from shared.townzone import day_bounds, today

router = APIRouter(prefix="/v1/energy", tags=["energy"])
Settings = Annotated[EnergySettings, Depends(settings_of(EnergySettings))]

BUCKETS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1)}


@router.get("/meters/{device_id}/anomalies")
async def meter_anomalies(
    device_id: str,
    pool: AppPool,
    _: Viewer,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Anomaly episodes and the flagged readings, each with expected vs observed."""
    start, end = time_window(start, end, default_span=timedelta(days=7))
    async with pool.connection() as conn:
        episodes, readings = await db.anomalies(conn, device_id=device_id, start=start, end=end)
    return {
        "device_id": device_id,
        "start": start,
        "end": end,
        "episodes": episodes,
        "readings": readings,
    }


@router.get("/meters/{device_id}/forecast")
async def meter_forecast(device_id: str, pool: AppPool, _: Viewer) -> dict[str, Any]:
    """The latest hourly forecast of the next 24 hours (kWh per hour, with an interval)."""
    async with pool.connection() as conn:
        rows = await db.forecast(conn, device_id=device_id)
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no forecast for this meter yet")
    return {"device_id": device_id, "issued_at": rows[0]["issued_at"], "hours": rows}


@router.get("/meters/{device_id}/consumption")
async def meter_consumption(
    device_id: str,
    pool: AppPool,
    settings: Settings,
    _: Viewer,
    bucket: str = "1h",
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=20000)] = 5000,
) -> dict[str, Any]:
    """Observed vs expected kWh per bucket (15m, 1h, 1d: the town's days)."""
    if bucket not in BUCKETS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"bucket: one of {list(BUCKETS)}")
    start, end = time_window(start, end, default_span=timedelta(days=7))
    async with pool.connection() as conn:
        rows = await db.consumption(
            conn,
            device_id=device_id,
            start=start,
            end=end,
            width=BUCKETS[bucket],
            limit=limit,
            zone=settings.timezone,
        )
    return {"device_id": device_id, "bucket": bucket, "items": rows}


@router.get("/summary")
async def town_summary(
    pool: AppPool, settings: Settings, _: Viewer, day: Day | None = None
) -> dict[str, Any]:
    """A day of the town (its time zone, today by default) for the whole town: total, top
    anomalies, kWh wasted by anomalies."""
    zone = settings.timezone
    day = day or today(zone)
    start, end = day_bounds(day, zone)
    async with pool.connection() as conn:
        s = await db.summary(conn, start=start, end=end)
    return {"day": day, **s}
