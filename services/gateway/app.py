"""Gateway app: MQTT in, Kafka out, PUBACK only after Kafka acknowledged the record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram

from services.gateway.mqtt_source import Incoming, MqttSource
from services.gateway.registry import DeviceRegistry
from services.gateway.settings import GatewaySettings
from shared.db import create_pool
from shared.http import check_pool, observability_router
from shared.kafka import Producer
from shared.payloads import Limits, Reason, Rejection, parse_payload, parse_topic
from shared.schemas import DeadLetter
from shared.stream.retry import DEFAULT_BACKOFF, retry_forever
from shared.supervise import Supervisor
from shared.topics import DEADLETTER_TOPIC, READINGS_TOPICS, Domain

log = logging.getLogger(__name__)

MESSAGES = Counter("townpulse_gateway_messages_total", "MQTT messages handled", ["outcome"])
REJECTED = Counter("townpulse_gateway_rejected_total", "Messages dead-lettered", ["reason"])
READINGS = Counter("townpulse_gateway_readings_total", "Readings produced to Kafka", ["domain"])
PER_MESSAGE = Histogram(
    "townpulse_gateway_readings_per_message",
    "Readings in one accepted message",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
ACK_LATENCY = Histogram(
    "townpulse_gateway_ack_latency_seconds",
    "From MQTT receipt to PUBACK (Kafka has it)",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INFLIGHT = Gauge("townpulse_gateway_inflight", "Messages received, not yet acknowledged")
PRODUCE_RETRIES = Counter("townpulse_gateway_produce_retries_total", "Kafka sends retried")
ROUTE_RETRIES = Counter(
    "townpulse_gateway_route_retries_total", "Messages whose routing failed and was retried"
)

DEADLETTER_PAYLOAD_CHARS = 1024

# Looked up once: `labels()` per message takes a lock and a dict look-up each time.
ACCEPTED = MESSAGES.labels("accepted")
READINGS_BY_DOMAIN = {d: READINGS.labels(d.value) for d in Domain}


@dataclass(slots=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class Pending:
    msg: Incoming
    out: Outgoing
    fut: asyncio.Future[object]


class Gateway:
    """Routes each MQTT message to a Kafka topic and acknowledges messages in arrival order."""

    def __init__(self, *, producer: Producer, registry: DeviceRegistry, limits: Limits) -> None:
        self._producer = producer
        self._registry = registry
        self._limits = limits
        self._queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self._pending: deque[Pending] = deque()
        self._send_lock = asyncio.Lock()
        self._pending_added = asyncio.Event()
        self.source: MqttSource | None = None

    def offer(self, msg: Incoming) -> None:
        """Called on the event loop for each MQTT message."""
        INFLIGHT.inc()
        self._queue.put_nowait(msg)

    async def route(self, msg: Incoming) -> Outgoing:
        """Decide where a message goes: its domain's readings topic, or the dead letters."""
        device_id: str | None = None
        try:
            topic = parse_topic(msg.topic)
            device_id = topic.device_id
            domain = await self._registry.domain_of(topic.device_id)
            if domain is None:
                raise Rejection(Reason.UNKNOWN_DEVICE, f"{topic.device_id!r} is not registered")
            if domain != topic.domain:
                raise Rejection(Reason.DOMAIN_MISMATCH, f"device is registered in {domain.value!r}")
            batch = parse_payload(
                topic, msg.payload, received_at=msg.received_at, limits=self._limits
            )
        except Rejection as rej:
            MESSAGES.labels("rejected").inc()
            REJECTED.labels(rej.reason.value).inc()
            log.info(
                "rejected",
                extra={
                    "reason": rej.reason.value,
                    "device_id": device_id,
                    "detail": rej.detail[:200],
                },
            )
            letter = DeadLetter(
                received_at=msg.received_at,
                topic=msg.topic[:256],
                device_id=device_id,
                reason=rej.reason.value,
                detail=rej.detail[:500],
                payload=msg.payload[:DEADLETTER_PAYLOAD_CHARS].decode("utf-8", "replace"),
                payload_size=len(msg.payload),
            )
            key = device_id.encode() if device_id else None
            return Outgoing(DEADLETTER_TOPIC, key, letter.to_bytes())
        ACCEPTED.inc()
        READINGS_BY_DOMAIN[batch.domain].inc(len(batch.readings))
        PER_MESSAGE.observe(len(batch.readings))
        # Keyed by device: one device's readings stay in order within one partition.
        return Outgoing(READINGS_TOPICS[batch.domain], batch.device_id.encode(), batch.to_bytes())

    async def _send(self, out: Outgoing) -> asyncio.Future[object]:
        return await self._producer.send(out.topic, out.value, key=out.key)

    async def _route_retrying(self, msg: Incoming) -> Outgoing:
        """Route a message; an outage of the device registry is waited out, never acked."""
        return await retry_forever(
            lambda: self.route(msg), what="routing (device registry)", retried=ROUTE_RETRIES.inc
        )

    async def _send_retrying(self, out: Outgoing) -> asyncio.Future[object]:
        return await retry_forever(
            lambda: self._send(out),
            what="Kafka send",
            on=(KafkaError,),
            retried=PRODUCE_RETRIES.inc,
        )

    async def pump(self) -> None:
        """Route messages and hand them to the producer, in arrival order."""
        while True:
            msg = await self._queue.get()
            out = await self._route_retrying(msg)
            # The acker holds this lock while it re-sends: nothing overtakes a re-sent record.
            async with self._send_lock:
                fut = await self._send_retrying(out)
                self._pending.append(Pending(msg, out, fut))
            self._pending_added.set()

    async def acker(self) -> None:
        """Acknowledge messages in arrival order, each once Kafka has acknowledged its record.

        MQTT 3.1.1 (4.6.0-2) wants PUBACKs in the order the PUBLISHes arrived. When Kafka fails a
        record, the records sent after it may have failed too (or not): every pending record is
        sent again, in order, so that a device's readings never reach Kafka out of order (the
        runtime would drop the older one as late). A record Kafka had already taken is then
        there twice: consumers are idempotent (storage's unique key, the models' clocks).
        """
        attempt = 0
        while True:
            while not self._pending:
                self._pending_added.clear()
                await self._pending_added.wait()
            head = self._pending[0]
            try:
                await head.fut
            except KafkaError as exc:
                delay = DEFAULT_BACKOFF.delay(attempt)
                attempt += 1
                PRODUCE_RETRIES.inc(len(self._pending))
                log.warning(
                    "Kafka did not take a record; re-sending %d pending in %.1f s: %s",
                    len(self._pending),
                    delay,
                    exc,
                )
                async with self._send_lock:
                    await asyncio.sleep(delay)
                    try:
                        await self._producer.reset_if_fatal(exc)
                    except Exception as reset_exc:
                        log.warning("Kafka producer not replaced yet: %r", reset_exc)
                        continue
                    for p in self._pending:
                        # Retrieve the old outcome so that asyncio does not warn about it.
                        if p.fut.done() and not p.fut.cancelled():
                            p.fut.exception()
                        p.fut = await self._send_retrying(p.out)
                continue
            attempt = 0
            self._pending.popleft()
            INFLIGHT.dec()
            if self.source is not None:
                self.source.ack(head.msg)
            ACK_LATENCY.observe(time.monotonic() - head.msg.received_mono)

    async def drain(self, *, within_s: float) -> None:
        """Give records already handed to the producer a chance to be acknowledged."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                # Shutdown only: a short poll is simpler than another event.
                while self._pending or not self._queue.empty():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = create_pool(settings.database_url, min_size=1, max_size=2)
        await pool.open()
        producer = Producer(settings.kafka_bootstrap, client_id=settings.instance)
        await producer.start()
        registry = DeviceRegistry(
            pool,
            conninfo=settings.database_url.get_secret_value(),
            unknown_ttl_s=settings.unknown_device_ttl_s,
        )
        gateway = Gateway(producer=producer, registry=registry, limits=settings.limits())
        source = MqttSource(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            client_id=settings.instance,
            username=settings.mqtt_username,
            password=settings.mqtt_password.get_secret_value(),
            share_group=settings.share_group,
            keepalive_s=settings.mqtt_keepalive_s,
            on_message=gateway.offer,
            loop=asyncio.get_running_loop(),
        )
        gateway.source = source
        supervisor = Supervisor(on_fatal=getattr(app.state, "on_fatal", None))
        supervisor.start("mqtt-pump", gateway.pump())
        supervisor.start("kafka-acker", gateway.acker())
        # Waits out database outages itself; look-ups ask the database meanwhile.
        supervisor.start("device-registry", registry.follow())
        source.start()
        app.state.pool, app.state.producer, app.state.source = pool, producer, source
        app.state.registry = registry
        app.state.supervisor = supervisor
        try:
            yield
        finally:
            # Stop taking messages, let the ones in flight reach Kafka and be acknowledged;
            # whatever is still unacknowledged is redelivered by the broker next time.
            await gateway.drain(within_s=5)
            source.stop()
            await supervisor.stop()
            await producer.stop()
            await pool.close()

    app = FastAPI(title="TownPulse gateway", lifespan=lifespan)

    async def mqtt_connected() -> None:
        if not app.state.source.connected:
            raise ConnectionError("not connected to the MQTT broker")

    async def kafka_reachable() -> None:
        await app.state.producer.partitions_for(DEADLETTER_TOPIC)

    app.include_router(
        observability_router(
            lambda: {
                "mqtt": mqtt_connected,
                "kafka": kafka_reachable,
                "database": lambda: check_pool(app.state.pool),
                "tasks": app.state.supervisor.check,
            }
        )
    )
    return app
