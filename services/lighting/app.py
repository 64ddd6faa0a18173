"""Lighting service: the online-learning runtime running the circuit processor, plus its API."""

from __future__ import annotations

from fastapi import FastAPI

from services.lighting.adapters.db import write_rows
from services.lighting.domain.algorithms import algorithms
from services.lighting.domain.circuit import LightingProcessor
from services.lighting.routes import SCHEDULE_PATH, router
from services.lighting.settings import LightingSettings
from shared.runtime.service import create_stream_app
from shared.topics import Domain


def create_app(settings: LightingSettings) -> FastAPI:
    return create_stream_app(
        settings=settings,
        domain=Domain.LIGHTING,
        processor=LightingProcessor(town=settings.town(), lamp_w=settings.lighting_lamp_w),
        sink=write_rows,
        router=router,
        algorithms=algorithms,
        public=(SCHEDULE_PATH,),
    )
