"""Waste API, served under the operator API's /v1/waste (same keys, same conventions)."""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status

from services.waste.adapters import db
from services.waste.domain.plan import (
    BinStatus,
    Point,
    Shift,
    best_round,
    due_bins,
    fitting,
    next_round,
    plan_routes,
    trucks_note,
)
from shared.http import Viewer, time_window
from shared.inputs import Day
from shared.ml.calendar import PARIS

router = APIRouter(prefix="/v1/waste", tags=["waste"])


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail)


def _point(text: str) -> Point:
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise _unprocessable("depot: 'lat,lon' in decimal degrees") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise _unprocessable("depot: latitude or longitude out of range")
    return Point("depot", lat, lon)


@router.get("/bins")
async def list_bins(
    request: Request,
    _: Viewer,
    min_fill: Annotated[float, Query(ge=0, le=100)] = 0.0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> dict[str, Any]:
    """Bins at or above `min_fill` %: cleaned level, predicted full time, fullest first."""
    async with request.app.state.pool.connection() as conn:
        items = await db.bins(conn, min_fill=min_fill, limit=limit)
    return {"full_pct": request.app.state.settings.full_pct, "items": items}


@router.get("/bins/{device_id}")
async def bin_detail(
    device_id: str,
    request: Request,
    _: Viewer,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=20000)] = 2000,
) -> dict[str, Any]:
    """One bin: level history, fill rate by weekday and hour, prediction, collections."""
    start, end = time_window(start, end, default_span=timedelta(days=7))
    async with request.app.state.pool.connection() as conn:
        detail = await db.bin_detail(conn, device_id=device_id, start=start, end=end, limit=limit)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no reading from this bin yet")
    return {"full_pct": request.app.state.settings.full_pct, **detail}


@router.get("/plan")
async def collection_plan(
    request: Request,
    _: Viewer,
    date_: Annotated[Day | None, Query(alias="date")] = None,
    depot: str | None = None,
    vehicles: Annotated[int, Query(ge=1, le=50)] = 1,
    capacity: Annotated[int | None, Query(ge=1, le=5000)] = None,
    shift_h: Annotated[float | None, Query(gt=0, le=24)] = None,
) -> dict[str, Any]:
    """The round of `date`: bins full before the next round, and a route per truck.

    `capacity` (bins a truck can empty) and `shift_h` (hours a truck has) default to the
    service's settings; `trucks` says how many of the `vehicles` the plan uses, and why not all.
    """
    settings = request.app.state.settings
    capacity = capacity or settings.truck_bins
    shift = Shift(
        hours=shift_h or settings.shift_h,
        speed_kmh=settings.truck_speed_kmh,
        stop_min=settings.stop_min,
    )
    depot = depot or settings.depot
    if depot is None:
        raise _unprocessable("depot: give 'lat,lon' (no default depot is configured)")
    home = _point(depot)
    today = datetime.now(PARIS).date()
    day = date_ or today
    hour = timedelta(hours=settings.round_hour)
    round_at = datetime.combine(day, time(), PARIS) + hour
    following = next_round(day, settings.round_weekdays)
    next_round_at = datetime.combine(following, time(), PARIS) + hour
    async with request.app.state.pool.connection() as conn:
        rows = await db.all_bins(conn)
    statuses = [BinStatus(r["id"], r["lat"], r["lon"], r["level_pct"], r["full_at"]) for r in rows]
    due = due_bins(statuses, next_round_at=next_round_at)
    located = [b for b in due if b.lat is not None and b.lon is not None]
    every = [b for b in statuses if b.lat is not None and b.lon is not None]

    def points(bins: list[BinStatus]) -> list[Point]:
        return [Point(b.id, float(b.lat or 0), float(b.lon or 0)) for b in bins]

    limit, detour = settings.plan_time_limit_s, settings.road_detour
    # The most urgent first: what does not fit in the trucks' loads and shifts waits.
    room = await asyncio.to_thread(
        fitting,
        home,
        points(located),
        vehicles=vehicles,
        capacity=capacity,
        shift=shift,
        detour=detour,
    )
    served, unserved = located[:room], located[room:]
    # The solver blocks for up to its time limit: off the event loop.
    plan, full = await asyncio.gather(
        asyncio.to_thread(
            plan_routes,
            home,
            points(served),
            vehicles=vehicles,
            capacity=capacity,
            shift=shift,
            time_limit_s=limit,
            detour=detour,
        ),
        # Visiting every bin is the comparison: whatever the capacity and the shift, as one
        # tour per truck.
        asyncio.to_thread(
            plan_routes,
            home,
            points(every),
            vehicles=vehicles,
            capacity=None,
            time_limit_s=limit,
            detour=detour,
        ),
    )
    plan = best_round(
        plan, full, home, points(served), capacity=capacity, detour=detour, shift=shift
    )
    by_id = {r["id"]: r for r in rows}
    km, all_km = plan.distance_m / 1000, full.distance_m / 1000
    # The town's own plan (today's, from its depot) is kept for the monthly report; a what-if
    # (another depot or day) is not, nor one short of trucks (bins left unserved).
    if depot == settings.depot and date_ in (None, today) and not unserved:
        async with request.app.state.pool.connection() as conn:
            await db.save_plan(
                conn,
                day=day,
                bins=len(served),
                every_bins=len(every),
                vehicles=vehicles,
                km=km,
                every_bin_km=all_km,
            )
    co2 = settings.co2_kg_per_km
    return {
        "date": day,
        "round_at": round_at,
        "next_round_at": next_round_at,
        "full_pct": settings.full_pct,
        "depot": {"lat": home.lat, "lon": home.lon},
        "bins": [_stop(by_id[b.id]) for b in served],
        "unserved": [_stop(by_id[b.id]) for b in unserved],
        "unlocated": [b.id for b in due if b.lat is None or b.lon is None],
        "routes": [
            {
                "vehicle": i + 1,
                "stops": [_stop(by_id[s]) for s in stops],
                "km": round(m / 1000, 3),
                "hours": round(shift.route_s(m, len(stops)) / 3600, 2) if stops else 0.0,
            }
            for i, (stops, m) in enumerate(zip(plan.routes, plan.route_m, strict=True))
        ],
        "trucks": trucks_note(
            plan, asked=vehicles, shift=shift, capacity=capacity, unserved=len(unserved)
        ),
        "km": round(km, 3),
        "co2_kg": round(km * co2, 2),
        "every_bin": {"bins": len(every), "km": round(all_km, 3), "co2_kg": round(all_km * co2, 2)},
        "saved_km": round(all_km - km, 3),
        "saved_co2_kg": round((all_km - km) * co2, 2),
        "solver": {
            "name": plan.solver,
            "seconds": plan.seconds,
            "time_limit_s": limit,
            "nearest_neighbour_km": round(plan.nearest_neighbour_m / 1000, 3),
            "road_detour": detour,
        },
    }


def _stop(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "name", "lat", "lon", "level_pct", "full_at")}
