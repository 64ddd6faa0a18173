"""Alerts app: the Kafka consumer, the webhook dispatcher and the HTTP API, wired together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from services.alerts.consumer import AlertsHandler
from services.alerts.deps import DISPATCHER, WEBHOOK_SECRETS
from services.alerts.dispatcher import Dispatcher
from services.alerts.domain.algorithms import ALGORITHMS
from services.alerts.routes import alerts, webhooks
from services.alerts.settings import AlertsSettings
from shared.algorithms import declare_algorithms
from shared.db import create_pool
from shared.http import POOL, AppResource, create_service_app
from shared.kafka import create_consumer
from shared.stream.loop import StreamLoop
from shared.stream.offsets import DbOffsets
from shared.supervise import Supervisor
from shared.topics import ALERTS_TOPIC, READINGS_TOPICS

log = logging.getLogger(__name__)


CONSUMER: AppResource[AIOKafkaConsumer] = AppResource("consumer")


def create_app(settings: AlertsSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI, supervisor: Supervisor) -> AsyncIterator[None]:
        # The consumer, the dispatcher (a poll and its result writer) and API requests.
        pool = create_pool(settings.database_url, min_size=2, max_size=8)
        await pool.open()
        await declare_algorithms(pool, service="alerts", algorithms=ALGORITHMS)
        dispatcher = Dispatcher(pool=pool, settings=settings)
        # Secrets stored in clear (before the key existed) are encrypted before any is used.
        async with pool.connection() as conn, conn.transaction():
            await dispatcher.secrets.seal_clear_rows(conn)
        WEBHOOK_SECRETS.put(app, dispatcher.secrets)
        kafka = create_consumer(
            bootstrap=settings.kafka_bootstrap,
            group_id=settings.group_id,
            client_id=settings.instance,
            max_poll_records=settings.batch_max_records,
            fill_ms=settings.batch_fill_ms,
        )
        offsets = DbOffsets(pool=pool, consumer=kafka, group_id=settings.group_id)
        loop = StreamLoop(
            consumer=kafka,
            pool=pool,
            handler=AlertsHandler(pool=pool, settings=settings, on_outbox=dispatcher.wake),
            offsets=offsets,
            group_id=settings.group_id,
            batch_max_records=settings.batch_max_records,
            batch_wait_ms=settings.batch_wait_ms,
            stall_s=settings.stream_stall_s,
        )
        loop.subscribe([ALERTS_TOPIC, *READINGS_TOPICS.values()])
        await kafka.start()
        supervisor.start("consumer", loop.run())
        dispatcher.start(supervisor)
        POOL.put(app, pool)
        CONSUMER.put(app, kafka)
        DISPATCHER.put(app, dispatcher)
        log.info("alerts started")
        try:
            yield
        finally:
            await supervisor.stop()
            await dispatcher.close()
            await kafka.stop()
            await pool.close()

    return create_service_app(
        title="TownPulse alerts",
        version="1",
        description="Alerts, alert rules and webhook subscriptions. "
        "Every endpoint but /healthz, /readyz and /metrics needs `Authorization: Bearer <key>`; "
        "`x-required-role` says which role (viewer, operator, admin) an operation needs.",
        settings=settings,
        lifespan=lifespan,
        routers=[alerts.router, webhooks.router],
        checks={"kafka": lambda app: CONSUMER.of(app).topics()},
    )
