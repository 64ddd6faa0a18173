"""Lighting API, served under the operator API's /v1/lighting (same keys, same conventions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from services.lighting.adapters import db
from services.lighting.domain.circuit import FULL
from services.lighting.settings import LightingSettings
from shared.factors import load_factors
from shared.http import AppPool, Viewer, check_time, settings_of, time_window
from shared.topics import DEVICE_ID_RE
from shared.townzone import today

router = APIRouter(prefix="/v1/lighting", tags=["lighting"])

# Savings are summed over at most this long a period.
MAX_SAVINGS_SPAN = timedelta(days=366)
# The schedule: the next nights unless asked otherwise; served without a key (app.py), the town
# publishes it (the open-data dataset `lighting-schedule`, services/lighting/manifest.py).
SCHEDULE_PATH = "/v1/lighting/schedule"
SCHEDULE_SPAN = timedelta(days=31)
TARIFF, GRID = "electricity_eur_per_kwh", "grid_kg_co2e_per_kwh"
Settings = Annotated[LightingSettings, Depends(settings_of(LightingSettings))]


@router.get("/circuits")
async def circuits(
    pool: AppPool, _: Viewer, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
) -> dict[str, Any]:
    """Every circuit's state now (the console's plan): lit or not, dimming, power."""
    async with pool.connection() as conn:
        rows = await db.circuits(conn, limit=limit)
    return {
        "items": [
            {
                "device_id": r["device_id"],
                "ts": r["ts"],
                "on": r["is_on"],
                "dimming_pct": r["dimming_pct"],
                "power_w": r["power_w"],
            }
            for r in rows
        ]
    }


@router.get("/circuits/{device_id}")
async def circuit(device_id: str, pool: AppPool, settings: Settings, _: Viewer) -> dict[str, Any]:
    """A circuit now: state, learnt power per dimming level, open faults, tonight's schedule
    and its forecast energy."""
    if not DEVICE_ID_RE.match(device_id):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "not a device id")
    async with pool.connection() as conn:
        row = await db.circuit(conn, device_id=device_id)
        faults = await db.open_faults(conn, device_id=device_id) if row else []
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no readings from this circuit yet")
    town = settings.town()
    plan = town.plan(today(settings.timezone))
    learnt: dict[str, float] = row["learnt_w"]
    full = learnt.get(str(FULL))
    tonight: dict[str, Any] | None = None
    if plan is not None:
        dim_level = str(max(10, min(FULL, round(town.dim_pct / 10) * 10)))
        dim_w = learnt.get(dim_level, full * town.dim_pct / 100 if full is not None else 0.0)
        tonight = {
            "dusk": plan.dusk,
            "dawn": plan.dawn,
            "off_hours": settings.lighting_off_hours or None,
            "dim_hours": settings.lighting_dim_hours or None,
            "dim_pct": town.dim_pct,
            "hours": {k: round(v, 2) for k, v in plan.hours.items()},
            "forecast_kwh": None
            if full is None
            else round(plan.forecast_kwh(full_w=full, dim_w=dim_w), 3),
        }
    return {
        "device_id": device_id,
        "ts": row["ts"],
        "on": row["is_on"],
        "dimming_pct": row["dimming_pct"],
        "power_w": row["power_w"],
        "learnt_w": learnt,
        "channels": row["channels"],
        "faults": faults,
        "tonight": tonight,
    }


@router.get("/schedule")
async def schedule(
    settings: Settings, start: datetime | None = None, end: datetime | None = None
) -> dict[str, Any]:
    """The council's schedule for each night overlapping [start, end) (the next 31 days by
    default): sunset, sunrise, the switch-off and dimming hours, the hours of each. No key."""
    # The start checked first: a default end is counted from it.
    start = check_time(start, "start")
    if end is None:
        end = (start or datetime.now(UTC)) + SCHEDULE_SPAN
    start, end = time_window(start, end, default_span=SCHEDULE_SPAN)
    town = settings.town()
    return {
        "start": start,
        "end": end,
        "items": [town.schedule(p) for p in town.nights(start, end)],
    }


@router.get("/savings")
async def savings(
    pool: AppPool,
    settings: Settings,
    _: Viewer,
    start: datetime | None = None,
    end: datetime | None = None,
    device_id: str | None = None,
) -> dict[str, Any]:
    """kWh, euros and CO2e saved by dimming and switch-off over [start, end), against lighting
    every night from dusk to dawn at each circuit's learnt full power."""
    if device_id is not None and not DEVICE_ID_RE.match(device_id):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "device_id: not a device id")
    start, end = time_window(start, end, default_span=timedelta(days=30), max_span=MAX_SAVINGS_SPAN)
    async with pool.connection() as conn:
        row = await db.savings(conn, start=start, end=end, device_id=device_id)
    factors = load_factors(settings.factors)
    saved = float(row["baseline_kwh"]) - float(row["used_kwh"])
    return {
        "start": start,
        "end": end,
        "device_id": device_id,
        "circuits": row["circuits"],
        "readings": row["readings"],
        "all_night_kwh": round(float(row["baseline_kwh"]), 3),
        "used_kwh": round(float(row["used_kwh"]), 3),
        "saved_kwh": round(saved, 3),
        "saved_eur": round(saved * factors[TARIFF].value, 2),
        "saved_kg_co2e": round(saved * factors[GRID].value, 3),
        "factors": {k: factors[k].value for k in (TARIFF, GRID)},
    }
