"""Waste API, served under the operator API's /v1/waste (same keys, same conventions)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from services.waste import planning
from services.waste.adapters import db
from services.waste.settings import WasteSettings
from shared.http import AppPool, Viewer, settings_of, time_window
from shared.inputs import Day

router = APIRouter(prefix="/v1/waste", tags=["waste"])
Settings = Annotated[WasteSettings, Depends(settings_of(WasteSettings))]


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail)


@router.get("/bins")
async def list_bins(
    pool: AppPool,
    settings: Settings,
    _: Viewer,
    min_fill: Annotated[float, Query(ge=0, le=100)] = 0.0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> dict[str, Any]:
    """Bins at or above `min_fill` %: cleaned level, predicted full time, fullest first."""
    async with pool.connection() as conn:
        items = await db.bins(conn, min_fill=min_fill, limit=limit)
    return {"full_pct": settings.full_pct, "items": items}


@router.get("/bins/{device_id}")
async def bin_detail(
    device_id: str,
    pool: AppPool,
    settings: Settings,
    _: Viewer,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=20000)] = 2000,
) -> dict[str, Any]:
    """One bin: level history, fill rate by weekday and hour, prediction, collections."""
    start, end = time_window(start, end, default_span=timedelta(days=7))
    async with pool.connection() as conn:
        detail = await db.bin_detail(conn, device_id=device_id, start=start, end=end, limit=limit)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no reading from this bin yet")
    return {"full_pct": settings.full_pct, **detail}


@router.get("/plan")
async def collection_plan(
    pool: AppPool,
    settings: Settings,
    _: Viewer,
    date_: Annotated[Day | None, Query(alias="date")] = None,
    depot: str | None = None,
    vehicles: Annotated[int | None, Query(ge=1, le=50)] = None,
    capacity: Annotated[int | None, Query(ge=1, le=5000)] = None,
    shift_h: Annotated[float | None, Query(gt=0, le=24)] = None,
) -> dict[str, Any]:
    """The round of `date`: bins full before the next round, and a route per truck.

    `vehicles`, `capacity` (bins a truck can empty) and `shift_h` (hours a truck has) default
    to the service's settings; `trucks` says how many of the `vehicles` the plan uses, and why
    not all. The town's own plan of a round day is recorded for the monthly report.
    """
    today = datetime.now(planning.town_tz(settings)).date()
    try:
        ask = planning.ask_for(
            settings,
            day=date_ or today,
            depot=depot,
            vehicles=vehicles,
            capacity=capacity,
            shift_h=shift_h,
        )
    except planning.PlanError as e:
        raise _unprocessable(str(e)) from None
    plan = await planning.compute(pool, settings, ask)
    if planning.is_town_plan(plan, settings, today=today):
        await planning.record(pool, settings, plan)
    return plan.answer
