"""Waste service: the online-learning runtime running the bin processor, plus its API."""

from __future__ import annotations

from fastapi import FastAPI

from services.waste import planning
from services.waste.adapters.db import write_rows
from services.waste.domain.algorithms import algorithms
from services.waste.domain.bin import WasteProcessor
from services.waste.routes import router
from services.waste.settings import WasteSettings
from shared.ml.calendar import TownCalendar
from shared.runtime.service import create_stream_app
from shared.topics import Domain


def create_app(settings: WasteSettings) -> FastAPI:
    processor = WasteProcessor(
        full_pct=settings.full_pct,
        calendar=TownCalendar(settings.timezone, settings.holidays_country),
        fill_model=settings.waste_fill_model,
    )
    return create_stream_app(
        settings=settings,
        domain=Domain.WASTE,
        processor=processor,
        sink=write_rows,
        router=router,
        algorithms=algorithms,
        tasks={"daily-plans": lambda pool: planning.daily_plans(pool, settings)},
    )
