"""Traffic service: the online-learning runtime running the counter processor, plus its API."""

from __future__ import annotations

from fastapi import FastAPI

from services.traffic.adapters.db import write_rows
from services.traffic.domain.algorithms import algorithms
from services.traffic.domain.counter import TrafficProcessor
from services.traffic.routes import router
from services.traffic.settings import TrafficSettings
from shared.ml.calendar import TownCalendar
from shared.runtime.service import create_stream_app
from shared.topics import Domain


def create_app(settings: TrafficSettings) -> FastAPI:
    processor = TrafficProcessor(
        calendar=TownCalendar(settings.timezone, settings.holidays_country),
        anomaly_scorer=settings.anomaly_scorer,
        forecaster=settings.traffic_forecaster,
    )
    return create_stream_app(
        settings=settings,
        domain=Domain.TRAFFIC,
        processor=processor,
        sink=write_rows,
        router=router,
        algorithms=algorithms,
    )
