"""Energy service: the online-learning runtime running the meter processor, plus its API."""

from __future__ import annotations

from fastapi import FastAPI

from services.energy.adapters.db import write_rows
from services.energy.domain.algorithms import algorithms
from services.energy.domain.replay import meter_processor
from services.energy.routes import router
from services.energy.settings import EnergySettings
from shared.ml.calendar import TownCalendar
from shared.runtime.service import create_stream_app
from shared.topics import Domain


def create_app(settings: EnergySettings) -> FastAPI:
    processor = meter_processor(
        calendar=TownCalendar(settings.timezone, settings.holidays_country),
        anomaly_scorer=settings.anomaly_scorer,
        forecaster=settings.energy_forecaster,
        temperature_device=settings.energy_temperature_device,
    )
    return create_stream_app(
        settings=settings,
        domain=Domain.ENERGY,
        processor=processor,
        sink=write_rows,
        router=router,
        algorithms=algorithms,
    )
