"""Alerts app: the Kafka consumer, the webhook dispatcher and the HTTP API, wired together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.alerts.consumer import AlertsConsumer, SeekToStoredOffsets
from services.alerts.dispatcher import Dispatcher
from services.alerts.routes import alerts, webhooks
from services.alerts.settings import AlertsSettings
from shared.db import create_pool
from shared.http import check_pool, observability_router
from shared.kafka import create_consumer
from shared.topics import ALERTS_TOPIC, READINGS_TOPICS

log = logging.getLogger(__name__)


def create_app(settings: AlertsSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The consumer, the dispatcher (a poll and its result writer) and API requests.
        pool = create_pool(settings.database_url, min_size=2, max_size=8)
        await pool.open()
        dispatcher = Dispatcher(pool=pool, settings=settings)
        kafka = create_consumer(
            bootstrap=settings.kafka_bootstrap,
            group_id=settings.group_id,
            client_id=settings.instance,
            max_poll_records=settings.batch_max_records,
        )
        kafka.subscribe(
            [ALERTS_TOPIC, *READINGS_TOPICS.values()],
            listener=SeekToStoredOffsets(kafka, pool, settings.group_id),
        )
        await kafka.start()
        consumer = AlertsConsumer(
            consumer=kafka, pool=pool, settings=settings, on_outbox=dispatcher.wake
        )
        tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(dispatcher.run())]
        app.state.pool, app.state.kafka, app.state.tasks = pool, kafka, tasks
        app.state.dispatcher = dispatcher
        log.info("alerts started")
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await kafka.stop()
            await pool.close()

    app = FastAPI(
        title="TownPulse alerts",
        version="1",
        description="Alerts, alert rules and webhook subscriptions. "
        "Every endpoint but /healthz, /readyz and /metrics needs `Authorization: Bearer <key>`.",
        lifespan=lifespan,
    )
    app.state.settings = settings

    async def workers_alive() -> None:
        for task in app.state.tasks:
            if task.done():
                raise RuntimeError("a worker loop stopped")

    async def kafka_up() -> None:
        await app.state.kafka.topics()

    app.include_router(
        observability_router(
            lambda: {
                "database": lambda: check_pool(app.state.pool),
                "kafka": kafka_up,
                "workers": workers_alive,
            }
        )
    )
    app.include_router(alerts.router)
    app.include_router(webhooks.router)
    return app
