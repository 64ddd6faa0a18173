"""A domain service's app: the runtime on the stream core, its outbox relay, and its API.

The wiring of every domain's service (energy, waste, traffic, lighting): each hands in its
processor (domain), its row sink (adapter) and its router (entrypoint); the rest of its app is
every service's (shared.http.create_service_app).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer
from fastapi import APIRouter, FastAPI

from shared.algorithms import Algorithm, declare_algorithms
from shared.db import Pool, create_pool
from shared.http import POOL, AppResource, create_service_app
from shared.kafka import Producer, create_consumer
from shared.runtime.checkpoints import CheckpointKey
from shared.runtime.outbox import OutboxRelay
from shared.runtime.processor import DeviceProcessor
from shared.runtime.worker import DeviceRuntime, RowSink
from shared.settings import StreamServiceSettings
from shared.stream.loop import StreamLoop
from shared.stream.offsets import DbOffsets
from shared.supervise import Supervisor
from shared.topics import READINGS_TOPICS, Domain

# A service's own long-running task beside its stream (e.g. the waste service's daily plans),
# given the service's database pool; run under the same supervisor as the consumer.
BackgroundTask = Callable[[Pool], Coroutine[Any, Any, None]]
P = TypeVar("P", bound=DeviceProcessor[Any])
# The service's Kafka consumer, which its readiness check asks for the topics.
CONSUMER: AppResource[AIOKafkaConsumer] = AppResource("consumer")


def create_stream_app(
    *,
    settings: StreamServiceSettings,
    domain: Domain,
    processor: P,
    sink: RowSink,
    router: APIRouter,
    algorithms: Callable[[P], Sequence[Algorithm]] = lambda _: (),
    tasks: Mapping[str, BackgroundTask] | None = None,
    public: tuple[str, ...] = (),
) -> FastAPI:
    """The app of `domain`'s service (shared.http.create_service_app): `processor` run over the
    domain's readings, exactly once per reading, its rows written by `sink`, and `router`.

    `algorithms`: what `processor` runs (given it), declared to the public register at each start.
    `tasks`: the service's own background tasks by name, supervised like its consumer.
    `public`: the router's paths served without a key (shared.http.secure).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI, supervisor: Supervisor) -> AsyncIterator[None]:
        pool = create_pool(settings.database_url, min_size=1, max_size=5)
        await pool.open()
        await declare_algorithms(pool, service=domain.value, algorithms=algorithms(processor))
        producer = Producer(settings.kafka_bootstrap, client_id=settings.instance)
        await producer.start()
        consumer = create_consumer(
            bootstrap=settings.kafka_bootstrap,
            group_id=settings.group_id,
            client_id=settings.instance,
            max_poll_records=settings.batch_max_records,
            fill_ms=settings.batch_fill_ms,
        )
        offsets = DbOffsets(pool=pool, consumer=consumer, group_id=settings.group_id)
        relay = OutboxRelay(pool=pool, producer=producer, group_id=settings.group_id)
        runtime = DeviceRuntime(
            processor=processor,
            sink=sink,
            pool=pool,
            offsets=offsets,
            group_id=settings.group_id,
            max_devices=settings.max_devices,
            checkpoint_interval_s=settings.checkpoint_interval_s,
            checkpoint_interval_records=settings.checkpoint_interval_records,
            checkpoint_budget_s=settings.checkpoint_budget_s,
            on_events=relay.wake,
            checkpoint_key=_checkpoint_key(settings),
            accept_unsigned=settings.checkpoint_accept_unsigned,
            domain=domain,
        )
        loop = StreamLoop(
            consumer=consumer,
            pool=pool,
            handler=runtime,
            offsets=offsets,
            group_id=settings.group_id,
            batch_max_records=settings.batch_max_records,
            batch_wait_ms=settings.batch_wait_ms,
            stall_s=settings.stream_stall_s,
        )
        loop.subscribe([READINGS_TOPICS[domain]])
        await consumer.start()
        supervisor.start("consumer", loop.run())
        supervisor.start("outbox-relay", relay.run())
        for name, task in (tasks or {}).items():
            supervisor.start(name, task(pool))
        POOL.put(app, pool)
        CONSUMER.put(app, consumer)
        try:
            yield
        finally:
            await supervisor.stop()
            await consumer.stop()
            await producer.stop()
            await pool.close()

    return create_service_app(
        title=f"TownPulse {domain.value}",
        settings=settings,
        lifespan=lifespan,
        routers=[router],
        checks={"kafka": lambda app: CONSUMER.of(app).topics()},
        public=public,
    )


def _checkpoint_key(settings: StreamServiceSettings) -> CheckpointKey | None:
    # Here rather than a method of the settings: the settings are the layer under the runtime
    # and import nothing of it.
    if settings.checkpoint_key is None:
        return None
    return CheckpointKey(settings.checkpoint_key.get_secret_value().encode())
