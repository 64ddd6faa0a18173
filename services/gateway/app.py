"""Gateway app: MQTT in, Kafka out, PUBACK only after Kafka acknowledged the record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram

from services.gateway import routes
from services.gateway.adapters.confirmed import read_back, seed_confirmed
from services.gateway.adapters.db import (
    DbCatalogue,
    HeardDevices,
    IntegrationRow,
    StoredCounters,
    install_shipped_profiles,
)
from services.gateway.ingest.codec import CodecPool
from services.gateway.ingest.dispatch import Ignored, parse_integration_message, parse_mapped
from services.gateway.ingest.native import parse_payload, parse_topic
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from services.gateway.ingest.uplink import Uplink
from services.gateway.intake import IntakeBound
from services.gateway.integrations import Integrations
from services.gateway.mqtt_source import Incoming, MqttSource
from services.gateway.registry import DeviceRegistry
from services.gateway.settings import GatewaySettings
from services.gateway.uplinks import DUPLICATES as UPLINK_DUPLICATES
from services.gateway.uplinks import Duplicate, Recent, Undo, UplinkMapper, readings_key
from shared.db import Pool, create_pool
from shared.http import POOL, AppResource, create_service_app
from shared.kafka import Producer
from shared.mqtt_admin import OWN_FORMAT_SUBTOPICS
from shared.schemas import DeadLetter, ReadingBatch
from shared.stream.retry import DEFAULT_BACKOFF, retry_forever
from shared.supervise import Supervisor
from shared.throttle import FailureThrottle
from shared.topics import DEADLETTER_TOPIC, MQTT_SUBSCRIPTION, READINGS_TOPICS, Domain

log = logging.getLogger(__name__)

MESSAGES = Counter("townpulse_gateway_messages_total", "MQTT messages handled", ["outcome"])
# Connections to the town's broker, and losses of them: a loss with no broker restart is worth
# a look (another client under the gateway's client id would show as losses, were the broker
# not binding client ids to identities).
MQTT_CONNECTIONS = Counter(
    "townpulse_gateway_mqtt_connections_total", "Connections to the town's broker", ["event"]
)
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
RESEND_SKIPPED = Counter(
    "townpulse_gateway_resend_skipped_total",
    "Records whose send failed but which Kafka held when read back: not produced again",
)
# Before deciding what to produce again, how long the pending records' outcomes are waited for
# (the producer's request timeout is 30 s), how far before the oldest unsure message Kafka is
# read back (clocks: a record's time is its send, after the message's arrival), and for how long.
RESEND_SETTLE_S = 40.0
READ_BACK_MARGIN_S = 5.0
READ_BACK_WITHIN_S = 60.0
IGNORED = Counter(
    "townpulse_gateway_ignored_total", "Status messages of devices' own formats with no reading"
)
QOS0_DROPPED = Counter(
    "townpulse_gateway_qos0_dropped_total",
    "QoS 0 messages dropped on arrival: the intake queue held its bound of them",
)
ROUTE_RETRIES = Counter(
    "townpulse_gateway_route_retries_total", "Messages whose routing failed and was retried"
)

DEADLETTER_PAYLOAD_CHARS = 1024

# Devices on TownPulse's broker that publish their own JSON (Tasmota, Shelly) do so below their
# own topic, which their credentials allow (shared/mqtt_admin.py).
MQTT_SUBSCRIPTIONS = (
    MQTT_SUBSCRIPTION,
    *(f"{MQTT_SUBSCRIPTION}/{t}" for t in OWN_FORMAT_SUBTOPICS),
)


def same_application(configured: str | None, sent: str | None) -> bool:
    """The Things Stack names an application `app@tenant` on MQTT and, on a webhook of a
    tenant without a name, just `app`: both are the same application.

    >>> same_application("bins@town", "bins"), same_application("bins", "parking@town")
    (True, False)
    """
    if not configured or not sent:
        return True
    return configured == sent or (
        configured.split("@")[0] == sent.split("@")[0]
        and ("@" not in configured or "@" not in sent)
    )


# Looked up once: `labels()` per message takes a lock and a dict look-up each time.
ACCEPTED = MESSAGES.labels("accepted")
READINGS_BY_DOMAIN = {d: READINGS.labels(d.value) for d in Domain}


@dataclass(slots=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes
    # A readings record's `readings_key`, remembered once Kafka confirms the record.
    readings: bytes | None = None


def _written(fut: asyncio.Future[object]) -> bool:
    return fut.done() and not fut.cancelled() and fut.exception() is None


def _settled() -> asyncio.Future[object]:
    fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


@dataclass(slots=True)
class Pending:
    msg: Incoming
    out: Outgoing | None
    fut: asyncio.Future[object]


class Gateway:
    """Routes each MQTT message to a Kafka topic and acknowledges messages in arrival order."""

    def __init__(
        self,
        *,
        producer: Producer,
        registry: DeviceRegistry,
        limits: Limits,
        mapper: UplinkMapper,
        intake: IntakeBound,
        confirmed: Recent[bytes] | None = None,
        read_back: Callable[[Recent[bytes], float], Awaitable[int]] | None = None,
    ) -> None:
        self._producer = producer
        # Remembers in `confirmed` every readings record Kafka holds since a time (epoch s):
        # adapters/confirmed.py's read_back, bound to this gateway's Kafka.
        self._read_back = read_back
        self._intake = intake
        self._registry = registry
        self._limits = limits
        self.mapper = mapper
        # The messages whose readings Kafka confirmed lately (`readings_key`): a broker
        # redelivers a message whose PUBACK it never got (the gateway's connection dropped, or
        # the broker stopped, after Kafka took the record), and a device re-sends what its own
        # broker did not acknowledge. Producing those again would double the readings on Kafka.
        self.confirmed: Recent[bytes] = (
            confirmed if confirmed is not None else Recent(max_keys=300_000, max_age_s=600)
        )
        self.integrations: Integrations | None = None
        self.pool: Pool | None = None
        self.zone: tzinfo | None = None
        self._queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self._pending: deque[Pending] = deque()
        self._send_lock = asyncio.Lock()
        self._pending_added = asyncio.Event()
        self.source: MqttSource | None = None

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def registry(self) -> DeviceRegistry:
        return self._registry

    def offer(self, msg: Incoming) -> None:
        """Called on the event loop for each MQTT message."""
        if not self._intake.admit(msg.qos):
            QOS0_DROPPED.inc()
            MESSAGES.labels("dropped").inc()
            return
        INFLIGHT.inc()
        self._queue.put_nowait(msg)

    async def route(self, msg: Incoming) -> Outgoing | None:
        """Where a message goes: its domain's readings topic, the dead letters, or nowhere (an
        uplink delivered again: acknowledged, not produced twice)."""
        device_id: str | None = None
        try:
            if msg.integration is not None:
                batch = await self._route_integration(msg)
            elif msg.topic.count("/") > 2:
                # A device's own JSON (Tasmota, Shelly) below its TownPulse topic.
                topic = parse_topic("/".join(msg.topic.split("/", 3)[:3]))
                device_id = topic.device_id
                device = await self._registry.device(topic.device_id)
                if device is None:
                    raise Rejection(Reason.UNKNOWN_DEVICE, f"{topic.device_id!r} is not registered")
                if device.domain != topic.domain:
                    raise Rejection(
                        Reason.DOMAIN_MISMATCH, f"device is registered in {device.domain.value!r}"
                    )
                uplink = parse_mapped(
                    msg.topic,
                    msg.payload,
                    received_at=msg.received_at,
                    limits=self._limits,
                    zone=self.zone,
                )
                batch, _ = await self.mapper.to_batch(
                    uplink, source="mqtt", received_at=msg.received_at, device=device
                )
            else:
                topic = parse_topic(msg.topic)
                device_id = topic.device_id
                domain = await self._registry.domain_of(topic.device_id)
                if domain is None:
                    raise Rejection(Reason.UNKNOWN_DEVICE, f"{topic.device_id!r} is not registered")
                if domain != topic.domain:
                    raise Rejection(
                        Reason.DOMAIN_MISMATCH, f"device is registered in {domain.value!r}"
                    )
                batch = parse_payload(
                    topic, msg.payload, received_at=msg.received_at, limits=self._limits
                )
        except Duplicate:
            UPLINK_DUPLICATES.labels(msg.integration or "mqtt").inc()
            return None
        except Ignored:
            # A Shelly publishes many status components (sys, wifi...) beside its switch's.
            IGNORED.inc()
            return None
        except Rejection as rej:
            if msg.integration is not None and self.integrations is not None:
                self.integrations.counted(msg.integration, ok=False, error=rej.reason.value)
            return self.reject(
                rej,
                topic=msg.topic,
                device_id=rej.device_id or device_id,
                payload=msg.payload,
                received_at=msg.received_at,
            )
        if msg.integration is not None and self.integrations is not None:
            self.integrations.counted(msg.integration, ok=True)
        key = readings_key(batch)
        # Only readings Kafka CONFIRMED are dropped. A copy still on its way is not enough: its
        # produce may yet fail, and were this second copy acknowledged without a record, a
        # gateway dying before the first is re-sent would lose the readings (the broker has
        # nothing left to redeliver). So a redelivery arriving while its first copy waits for
        # Kafka (a reconnect within the milliseconds of a produce) is produced again: storage's
        # unique key stores it once.
        if key in self.confirmed:
            UPLINK_DUPLICATES.labels(msg.integration or "mqtt").inc()
            return None
        return self.accept(batch, readings=key)

    async def _route_integration(self, msg: Incoming) -> ReadingBatch:
        assert msg.integration is not None and self.integrations is not None
        row = self.integrations.row(msg.integration)
        if row is None:
            raise Rejection(Reason.BAD_TOPIC, f"integration {msg.integration!r} was removed")
        uplink = parse_integration_message(
            row.kind,
            msg.topic,
            msg.payload,
            received_at=msg.received_at,
            limits=self._limits,
            default_topic=not row.topic,
            zone=self.zone,
        )
        return await self.map_uplink(uplink, row=row, received_at=msg.received_at)

    async def map_uplink(
        self, uplink: Uplink, *, row: IntegrationRow, received_at: datetime
    ) -> ReadingBatch:
        batch, _ = await self.map_uplink_undoable(uplink, row=row, received_at=received_at)
        return batch

    async def map_uplink_undoable(
        self, uplink: Uplink, *, row: IntegrationRow, received_at: datetime
    ) -> tuple[ReadingBatch, Undo]:
        if not same_application(row.application, uplink.application):
            raise Rejection(
                Reason.WRONG_APPLICATION,
                f"{uplink.device_key} belongs to application {uplink.application!r},"
                f" not {row.application!r}",
            )
        return await self.mapper.to_batch(
            uplink, source=row.id, received_at=received_at, profile_name=row.profile
        )

    def reject(
        self,
        rej: Rejection,
        *,
        topic: str,
        device_id: str | None,
        payload: bytes,
        received_at: datetime,
    ) -> Outgoing:
        MESSAGES.labels("rejected").inc()
        REJECTED.labels(rej.reason.value).inc()
        log.info(
            "rejected",
            extra={"reason": rej.reason.value, "device_id": device_id, "detail": rej.detail[:200]},
        )
        letter = DeadLetter(
            received_at=received_at,
            topic=topic[:256],
            device_id=device_id,
            reason=rej.reason.value,
            detail=rej.detail[:500],
            payload=payload[:DEADLETTER_PAYLOAD_CHARS].decode("utf-8", "replace"),
            payload_size=len(payload),
        )
        key = device_id.encode() if device_id else None
        return Outgoing(DEADLETTER_TOPIC, key, letter.to_bytes())

    def accept(self, batch: ReadingBatch, *, readings: bytes | None = None) -> Outgoing:
        ACCEPTED.inc()
        READINGS_BY_DOMAIN[batch.domain].inc(len(batch.readings))
        PER_MESSAGE.observe(len(batch.readings))
        # Keyed by device: one device's readings stay in order within one partition.
        return Outgoing(
            READINGS_TOPICS[batch.domain],
            batch.device_id.encode(),
            batch.to_bytes(),
            readings=readings,
        )

    async def send(self, out: Outgoing) -> asyncio.Future[object]:
        """Hand a record to the producer behind the records being re-sent (HTTP ingest)."""
        async with self._send_lock:
            return await self._send(out)

    async def _send(self, out: Outgoing) -> asyncio.Future[object]:
        return await self._producer.send(out.topic, out.value, key=out.key)

    async def _route_retrying(self, msg: Incoming) -> Outgoing | None:
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
            self._intake.taken(msg.qos)
            out = await self._route_retrying(msg)
            # The acker holds this lock while it re-sends: nothing overtakes a re-sent record.
            async with self._send_lock:
                if out is None:
                    # Nothing to produce, but acknowledged in its turn like every message.
                    fut = _settled()
                else:
                    fut = await self._send_retrying(out)
                self._pending.append(Pending(msg, out, fut))
            self._pending_added.set()

    async def acker(self) -> None:
        """Acknowledge messages in arrival order, each once Kafka has acknowledged its record.

        MQTT 3.1.1 (4.6.0-2) wants PUBACKs in the order the PUBLISHes arrived. When Kafka fails a
        record, the records sent after it may have failed too (or not): the pending records
        Kafka did not write are sent again, in order (`_resend_unwritten`).
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
                    try:
                        await self._resend_unwritten()
                    except (KafkaError, TimeoutError, OSError) as read_exc:
                        log.warning("Kafka's records not read back yet: %r", read_exc)
                continue
            attempt = 0
            self._pending.popleft()
            INFLIGHT.dec()
            if head.out is not None and head.out.readings is not None:
                self.confirmed.add(head.out.readings)
            origin = head.msg.origin or self.source
            if origin is not None:
                origin.ack(head.msg)
            ACK_LATENCY.observe(time.monotonic() - head.msg.received_mono)

    async def _resend_unwritten(self) -> None:
        """Produce again the pending records Kafka did not write, in their order.

        A record whose outcome is unknown (its request failed or timed out, the producer was
        replaced) may have been written all the same: a stopped broker can append a record and
        die before answering, and a new producer's sequence numbers cannot tell the broker it is
        the same record. Producing it again would put it on Kafka twice (bench.chaos counted
        one such double at a Kafka stop). So every pending record's outcome is first waited
        for, then the readings topics are read back from the oldest unsure message on: what
        Kafka holds is not produced again. A record Kafka acknowledged is never produced again
        either. The price: when Kafka failed a record but took a later one of the same device,
        the failed one lands after it and the models drop it as late (storage keeps it).
        """
        unsettled = [p.fut for p in self._pending if p.out is not None and not p.fut.done()]
        if unsettled:
            # The producer settles every future within its request timeout (30 s).
            await asyncio.wait(unsettled, timeout=RESEND_SETTLE_S)
        unsure = [p for p in self._pending if p.out is not None and not _written(p.fut)]
        if not unsure:
            return
        if self._read_back is not None and any(p.out.readings for p in unsure if p.out):
            since = min(p.msg.received_at.timestamp() for p in unsure) - READ_BACK_MARGIN_S
            async with asyncio.timeout(READ_BACK_WITHIN_S):
                await self._read_back(self.confirmed, since)
        resent = 0
        for p in unsure:
            assert p.out is not None
            # Retrieve the old outcome so that asyncio does not warn about it.
            if p.fut.done() and not p.fut.cancelled():
                p.fut.exception()
            if p.out.readings is not None and p.out.readings in self.confirmed:
                RESEND_SKIPPED.inc()
                p.fut = _settled()
                continue
            p.fut = await self._send_retrying(p.out)
            resent += 1
        log.warning(
            "re-sent %d of %d unsure records (the others were on Kafka)", resent, len(unsure)
        )

    async def drain(self, *, within_s: float) -> None:
        """Give records already handed to the producer a chance to be acknowledged."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                # Shutdown only: a short poll is simpler than another event.
                while self._pending or not self._queue.empty():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)


SOURCE: AppResource[MqttSource] = AppResource("source")
PRODUCER: AppResource[Producer] = AppResource("producer")


async def _mqtt_connected(app: FastAPI) -> None:
    if not SOURCE.of(app).connected:
        raise ConnectionError("not connected to the MQTT broker")


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI, supervisor: Supervisor) -> AsyncIterator[None]:
        # Two for routing, the rest for the operators' routes and the HTTP ingest.
        pool = create_pool(settings.database_url, min_size=1, max_size=settings.db_pool_size)
        await pool.open()
        producer = Producer(settings.kafka_bootstrap, client_id=settings.instance)
        await producer.start()
        conninfo = settings.database_url.get_secret_value()
        registry = DeviceRegistry(
            pool, conninfo=conninfo, unknown_ttl_s=settings.unknown_device_ttl_s
        )
        catalogue = DbCatalogue(pool)
        await retry_forever(
            lambda: install_shipped_profiles(pool, repository=settings.device_repository),
            what="installing the shipped profiles",
        )
        mapper = UplinkMapper(
            registry=registry,
            catalogue=catalogue,
            codecs=CodecPool(
                time_limit_s=settings.codec_time_limit_s,
                memory_limit_bytes=settings.codec_memory_limit_bytes,
            ),
            counters=StoredCounters(pool),
            heard=HeardDevices(pool),
        )
        gateway = Gateway(
            producer=producer,
            registry=registry,
            limits=settings.limits(),
            mapper=mapper,
            intake=IntakeBound(qos0_max=settings.qos0_queue_max),
            confirmed=Recent(
                max_keys=settings.dedup_max_messages, max_age_s=settings.dedup_window_s
            ),
            read_back=lambda confirmed, since_s: read_back(
                confirmed,
                bootstrap=settings.kafka_bootstrap,
                client_id=f"{settings.instance}-readback",
                topics=READINGS_TOPICS.values(),
                partitions_for=producer.partitions_for,
                since_s=since_s,
            ),
        )
        loop = asyncio.get_running_loop()
        integrations = Integrations(
            pool=pool,
            conninfo=conninfo,
            instance=settings.instance,
            keepalive_s=settings.mqtt_keepalive_s,
            on_message=gateway.offer,
            loop=loop,
            subscribe=settings.integrations,
        )
        gateway.integrations = integrations
        gateway.pool = pool
        gateway.zone = ZoneInfo(settings.timezone)
        source = MqttSource(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            client_id=settings.instance,
            username=settings.mqtt_username or settings.instance,
            password=settings.mqtt_password.get_secret_value(),
            share_group=settings.share_group,
            keepalive_s=settings.mqtt_keepalive_s,
            on_message=gateway.offer,
            loop=loop,
            subscriptions=MQTT_SUBSCRIPTIONS,
            on_state=lambda up, _why: MQTT_CONNECTIONS.labels("connected" if up else "lost").inc(),
        )
        gateway.source = source
        # Before the subscription: a message redelivered because a killed gateway never sent
        # its PUBACK is then known as confirmed (adapters/confirmed.py).
        seeded = await seed_confirmed(
            gateway.confirmed,
            bootstrap=settings.kafka_bootstrap,
            client_id=f"{settings.instance}-seed",
            topics=READINGS_TOPICS.values(),
            partitions_for=producer.partitions_for,
            window_s=settings.dedup_seed_s,
            within_s=settings.dedup_seed_timeout_s,
        )
        log.info("remembered %d readings records confirmed before this start", seeded)
        supervisor.start("mqtt-pump", gateway.pump())
        supervisor.start("kafka-acker", gateway.acker())
        # Waits out database outages itself; look-ups ask the database meanwhile.
        supervisor.start("device-registry", registry.follow())
        supervisor.start("integrations", integrations.follow())
        supervisor.start("integration-status", integrations.report())
        source.start()
        POOL.put(app, pool)
        PRODUCER.put(app, producer)
        SOURCE.put(app, source)
        routes.INGEST.put(
            app,
            routes.Ingest(
                gateway=gateway,
                integrations=integrations,
                catalogue=catalogue,
                codecs=mapper.codecs,
                settings=settings,
                throttle=FailureThrottle(
                    per_source=settings.auth_failures_per_source,
                    per_key=settings.auth_failures_per_key,
                    window_s=settings.auth_failure_window_s,
                ),
            ),
        )
        try:
            yield
        finally:
            # Stop taking messages, let the ones in flight reach Kafka and be acknowledged;
            # whatever is still unacknowledged is redelivered by the broker next time.
            await gateway.drain(within_s=5)
            integrations.stop()
            source.stop()
            await supervisor.stop()
            await producer.stop()
            await pool.close()

    return create_service_app(
        title="TownPulse gateway",
        settings=settings,
        lifespan=lifespan,
        routers=[routes.router, routes.ingest_router],
        checks={
            "mqtt": _mqtt_connected,
            "kafka": lambda app: PRODUCER.of(app).partitions_for(DEADLETTER_TOPIC),
        },
        # The network servers and devices that push over HTTP bring their own secrets.
        public=("/v1/ingest/",),
    )
