"""When Kafka fails records, the gateway produces again only those Kafka does not hold.

A broker stopped after appending a record and before answering leaves the producer with an
error for a record that is on the topic: producing every failed record again doubled one in
bench.chaos. The producer here is the real one against the stack's Kafka, with chosen sends
reported as failed: some written all the same, some never sent. The topic is counted directly,
before any database key could hide a double.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaTimeoutError

from services.gateway.adapters.confirmed import read_back
from services.gateway.app import Gateway, Outgoing
from services.gateway.ingest.rejection import Limits
from services.gateway.intake import IntakeBound
from services.gateway.mqtt_source import Incoming
from services.gateway.uplinks import Recent, readings_key
from shared.kafka import Producer
from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from tests.support import until

pytestmark = pytest.mark.integration


class FailingProducer(Producer):
    """The stack's Kafka through the real producer; chosen records' sends are reported failed,
    once each: `written` ones after Kafka wrote them, `dropped` ones without sending them."""

    def __init__(
        self, bootstrap: str, *, client_id: str, written: set[bytes], dropped: set[bytes]
    ) -> None:
        super().__init__(bootstrap, client_id=client_id)
        self.written, self.dropped = written, dropped

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None
    ) -> asyncio.Future[object]:
        failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if value in self.dropped:
            self.dropped.discard(value)
            failed.set_exception(KafkaTimeoutError())
            return failed
        fut = await super().send(topic, value, key=key)
        if value not in self.written:
            return fut
        self.written.discard(value)

        def after_kafka(done: asyncio.Future[object]) -> None:
            failed.set_exception(done.exception() or KafkaTimeoutError())

        fut.add_done_callback(after_kafka)
        return failed


class ScratchGateway(Gateway):
    """Routes every message, a ReadingBatch's bytes, to a scratch topic: routing is not what
    is tested here."""

    topic = ""

    async def route(self, msg: Incoming) -> Outgoing | None:
        batch = ReadingBatch.from_bytes(msg.payload)
        if (key := readings_key(batch)) in self.confirmed:
            return None
        return Outgoing(self.topic, batch.device_id.encode(), msg.payload, readings=key)


class Origin:
    """Where a message came from: records what the gateway acknowledges, in order."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, msg: Incoming) -> None:
        self.acked.append(msg.mid)


def _message(mid: int, *, device: str, at: datetime, origin: Origin) -> Incoming:
    ts = at + timedelta(minutes=15 * mid)
    batch = ReadingBatch(
        device_id=device,
        domain=Domain.ENERGY,
        received_at=ts,
        readings=[Reading(ts=ts, metric="energy_kwh", value=float(mid))],
    )
    return Incoming(
        topic=f"sensors/energy/{device}",
        payload=batch.to_bytes(),
        mid=mid,
        qos=1,
        generation=1,
        received_at=datetime.now(UTC),
        origin=cast(Any, origin),
    )


async def _records(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        found: list[bytes] = []
        while await consumer.position(tp) < end:
            got = await consumer.getmany(tp, timeout_ms=1000)
            found += [r.value for r in got.get(tp, []) if r.value is not None]
        return found
    finally:
        await consumer.stop()


async def test_only_records_kafka_does_not_hold_are_produced_again(
    stack_env: dict[str, str],
) -> None:
    bootstrap = stack_env["KAFKA_BOOTSTRAP"]
    topic = f"test.resend.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    origin = Origin()
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    messages = [_message(mid, device="resend-1", at=at, origin=origin) for mid in range(1, 7)]
    payloads = [m.payload for m in messages]
    # The first and fourth reported failed once Kafka wrote them, the second never sent.
    producer = FailingProducer(
        bootstrap,
        client_id="test-resend",
        written={payloads[0], payloads[3]},
        dropped={payloads[1]},
    )
    await producer.start()

    async def partitions(_topic: str) -> set[int]:
        return {0}

    gateway = ScratchGateway(
        producer=producer,
        registry=cast(Any, None),
        limits=Limits(),
        mapper=cast(Any, None),
        intake=IntakeBound(qos0_max=100),
        confirmed=Recent(max_keys=1000),
        read_back=lambda confirmed, since_s: read_back(
            confirmed,
            bootstrap=bootstrap,
            client_id="test-resend-readback",
            topics=[topic],
            partitions_for=partitions,
            since_s=since_s,
        ),
    )
    gateway.topic = topic
    tasks = [asyncio.create_task(gateway.pump()), asyncio.create_task(gateway.acker())]
    try:
        for msg in messages:
            gateway.offer(msg)
        await until(lambda: len(origin.acked) == len(messages), within_s=90, what="every ack")
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await producer.stop()

    assert origin.acked == [m.mid for m in messages]
    on_kafka = await _records(bootstrap, topic)
    # Every message's record exactly once: none doubled, the one never sent sent again.
    assert sorted(on_kafka) == sorted(payloads)
