"""Lighting API, served under the operator API's /v1/lighting (same keys, same conventions)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status

from services.lighting.adapters import db
from services.lighting.domain.circuit import FULL
from services.lighting.settings import LightingSettings
from shared.factors import load_factors
from shared.http import AppPool, Viewer, settings_of, time_window
from shared.topics import DEVICE_ID_RE
from shared.townzone import today

router = APIRouter(prefix="/v1/lighting", tags=["lighting"])

# Savings are summed over at most this long a period.
MAX_SAVINGS_SPAN = timedelta(days=366)
TARIFF, GRID = "electricity_eur_per_kwh", "grid_kg_co2e_per_kwh"
Settings = Annotated[LightingSettings, Depends(settings_of(LightingSettings))]


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
