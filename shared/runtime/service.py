"""A domain service's app: the runtime's worker and outbox relay in the lifespan, plus its API.

The same wiring as services/energy/app.py, shared by the services that came after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from fastapi import APIRouter, FastAPI
from pydantic import SecretStr

from shared.db import create_pool
from shared.http import check_pool, observability_router
from shared.kafka import create_producer
from shared.runtime.processor import DeviceProcessor
from shared.runtime.worker import StreamWorker
from shared.topics import READINGS_TOPICS, Domain


class StreamSettings(Protocol):
    @property
    def database_url(self) -> SecretStr: ...
    @property
    def kafka_bootstrap(self) -> str: ...
    @property
    def instance(self) -> str: ...
    @property
    def group_id(self) -> str: ...
    @property
    def max_devices(self) -> int: ...
    @property
    def batch_max_records(self) -> int: ...
    @property
    def batch_wait_ms(self) -> int: ...


def create_stream_app(
    *,
    title: str,
    settings: StreamSettings,
    processor: DeviceProcessor[Any],
    domain: Domain,
    router: APIRouter,
) -> FastAPI:
    """A FastAPI app running `processor` over `domain`'s readings, exactly once per reading."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = create_pool(settings.database_url, min_size=1, max_size=5)
        await pool.open()
        producer = create_producer(settings.kafka_bootstrap, client_id=settings.instance)
        await producer.start()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.group_id,
            client_id=settings.instance,
            # Offsets live in the database with the effects (see shared/runtime/worker.py).
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.batch_max_records,
            isolation_level="read_committed",
        )
        worker = StreamWorker(
            processor=processor,
            pool=pool,
            consumer=consumer,
            producer=producer,
            group_id=settings.group_id,
            topics=[READINGS_TOPICS[domain]],
            max_devices=settings.max_devices,
            batch_max_records=settings.batch_max_records,
            batch_wait_ms=settings.batch_wait_ms,
        )
        worker.subscribe()
        await consumer.start()
        tasks = [asyncio.create_task(worker.run()), asyncio.create_task(worker.relay())]
        app.state.pool, app.state.worker, app.state.tasks = pool, worker, tasks
        app.state.consumer, app.state.settings = consumer, settings
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()
            await producer.stop()
            await pool.close()

    app = FastAPI(title=title, lifespan=lifespan)

    async def worker_alive() -> None:
        for t in app.state.tasks:
            if t.done():
                raise RuntimeError("a worker task stopped")

    async def kafka_reachable() -> None:
        await app.state.consumer.topics()

    app.include_router(
        observability_router(
            lambda: {
                "database": lambda: check_pool(app.state.pool),
                "kafka": kafka_reachable,
                "worker": worker_alive,
            }
        )
    )
    app.include_router(router)
    return app
