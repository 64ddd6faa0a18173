"""The stream core's pure parts: batches, splitting, what counts as poison, the retry policy."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from aiokafka import ConsumerRecord, TopicPartition

from shared.stream.loop import Batch, Poison, is_poison
from shared.stream.retry import Backoff

pytestmark = pytest.mark.unit

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


def _rec(tp: TopicPartition, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=(),
    )


def _batch() -> Batch:
    return Batch({A: [_rec(A, o) for o in range(10, 15)], B: [_rec(B, o) for o in range(3, 6)]})


def test_a_batch_knows_where_each_partition_starts_and_ends() -> None:
    b = _batch()
    assert len(b) == 8
    assert b.start == {A: 10, B: 3}
    assert b.end == {A: 15, B: 6}


def test_halves_stay_contiguous_per_partition_and_cover_the_batch() -> None:
    first, second = _batch().split()
    assert len(first) + len(second) == 8
    seen = [(tp, r.offset) for half in (first, second) for tp, r in half.items()]
    assert sorted(seen) == sorted((tp, r.offset) for tp, r in _batch().items())
    for half in (first, second):
        for msgs in half.records.values():
            offsets = [m.offset for m in msgs]
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))


def test_splitting_down_to_one_record() -> None:
    b = _batch()
    while len(b) > 1:
        b, _ = b.split()
    assert len(b) == 1


@pytest.mark.parametrize(
    ("exc", "poison"),
    [
        (Poison("bad"), True),
        (psycopg.errors.CharacterNotInRepertoire("nul"), True),
        (psycopg.errors.NumericValueOutOfRange("big"), True),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
        (psycopg.OperationalError("server closed the connection"), False),
        (psycopg.errors.AdminShutdown("terminating connection"), False),
        (TimeoutError(), False),
        (ConnectionRefusedError(), False),
    ],
)
def test_only_errors_caused_by_the_data_are_poison(exc: BaseException, poison: bool) -> None:
    assert is_poison(exc) is poison


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    b = Backoff(first_s=1.0, cap_s=8.0)
    for attempt, step in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (50, 8.0)]:
        for _ in range(50):
            assert step / 2 <= b.delay(attempt) <= step
