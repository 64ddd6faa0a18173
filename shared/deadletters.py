"""Dead letters: messages the platform refused, kept with the reason for operators to see.

Keyed by the Kafka record they came from, so a record dead-lettered again after a replay is
stored once.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import TopicPartition
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from shared.schemas import DeadLetter

INSERT_DEADLETTER = """
INSERT INTO deadletters
    (kafka_topic, kafka_partition, kafka_offset, received_at, topic, device_id, reason, detail,
     payload, payload_size)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING
"""


def _text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL: a dead letter must be storable whatever it carries.
    return value.replace("\x00", "\ufffd") if value is not None else None


async def write_deadletters(
    conn: AsyncConnection[DictRow], letters: Sequence[tuple[TopicPartition, int, DeadLetter]]
) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            INSERT_DEADLETTER,
            [
                (
                    tp.topic,
                    tp.partition,
                    offset,
                    d.received_at,
                    _text(d.topic),
                    _text(d.device_id),
                    d.reason,
                    _text(d.detail),
                    _text(d.payload),
                    d.payload_size,
                )
                for tp, offset, d in letters
            ],
        )
