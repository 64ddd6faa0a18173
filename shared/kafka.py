"""Kafka plumbing: producers and consumers configured for "nothing lost"."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def create_producer(bootstrap: str, *, client_id: str) -> AIOKafkaProducer:
    """An idempotent producer: a record is acknowledged once every in-sync replica has it."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        # A few milliseconds of batching turns thousands of small messages into few requests,
        # at a latency cost far below the MQTT round trip.
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30000,
    )


def create_consumer(
    *topics: str, bootstrap: str, group_id: str, client_id: str, max_poll_records: int = 5000
) -> AIOKafkaConsumer:
    """A consumer whose offsets are committed by the caller, only after its effects are durable."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        # A batch can take a while to write when PostgreSQL checkpoints: do not get kicked out of
        # the group for that (the default 5 minutes is kept for max_poll_interval_ms).
        session_timeout_ms=30000,
        heartbeat_interval_ms=3000,
        isolation_level="read_committed",
    )
