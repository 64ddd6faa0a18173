"""The one consume loop.

    getmany -> handler.prepare -> [transaction: handler.write + offsets.save] -> offsets.committed

Every transaction a handler's writes go into is the loop's: a batch's, and one for the `Work` a
handler returns outside batches (periodic checkpoints, a revocation's last save).

On any failure the loop rewinds each partition of the batch to where it has to start again,
from memory (the batch's first offsets, or what the handler says, e.g. its checkpoints), asks the
handler to drop state it can no longer trust, backs off and polls again: the same records come
back, nothing is skipped and no database is needed to rewind. Records the database refuses
(a poison record in an otherwise good batch) are found by splitting the batch in halves, and
dead-lettered with the reason; the rest goes through.

Partitions are positioned by the run loop, not by the rebalance listener: a newly assigned
partition is paused until its stored position has been read, so a database outage during a
rebalance delays that partition instead of failing the rebalance.

A watchdog runs beside the loop. Outages are retried (each attempt is progress), but a poll that
never returns, or a consumer that fetches nothing while its partitions hold records, is a
consumer stuck without a word: after an unclean Kafka restart one service's consumer once sat
silent for minutes while the others resumed. The watchdog logs where the loop is waiting and
raises `Stalled`; the service's supervisor then exits the process, and its manager starts a
fresh one, which resumes exactly once from the stored offsets (shared/supervise.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from shared.db import Pool
from shared.stream.offsets import Fenced, OffsetStore, Position
from shared.stream.retry import DEFAULT_BACKOFF, Backoff, retry_forever

log = logging.getLogger(__name__)

from typing import TypeAlias  # noqa: E402

Record: TypeAlias = ConsumerRecord[Any, Any]
Start = Literal["beginning", "end"]

BATCHES = Counter("townpulse_stream_batches_total", "Batches by outcome", ["group", "outcome"])
POISON = Counter("townpulse_stream_poison_total", "Records dead-lettered as poison", ["group"])
FAILING = Gauge("townpulse_stream_consecutive_failures", "Failed attempts in a row", ["group"])


class Stalled(RuntimeError):
    """The consumer made no progress for the stall limit (see the module's docstring)."""


def awaiting(coro: Any) -> list[str]:
    """Where a suspended coroutine waits, outermost first (`Task.print_stack` shows only the
    task's own frame)."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            where.append(
                f"{frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})"
            )
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


class Poison(ValueError):
    """Raised by a handler for input it can never process (dead-lettered, not retried)."""


def is_poison(exc: BaseException) -> bool:
    """Errors caused by the data itself: retrying the same records cannot succeed.

    Connection and pool errors (`OperationalError`, `InterfaceError`, timeouts) are not: those
    are outages, retried until the component returns. `UnicodeError`: text psycopg cannot
    encode (a lone surrogate from a foreign producer).
    """
    return isinstance(exc, Poison | psycopg.DataError | psycopg.IntegrityError | UnicodeError)


@dataclass(slots=True)
class Batch:
    """Records of one poll, contiguous per partition, in offset order."""

    records: dict[TopicPartition, list[Record]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(m) for m in self.records.values())

    def __bool__(self) -> bool:
        return any(self.records.values())

    @property
    def start(self) -> dict[TopicPartition, int]:
        return {tp: m[0].offset for tp, m in self.records.items()}

    @property
    def end(self) -> dict[TopicPartition, int]:
        return {tp: m[-1].offset + 1 for tp, m in self.records.items()}

    def items(self) -> Iterable[tuple[TopicPartition, Record]]:
        for tp, msgs in self.records.items():
            for m in msgs:
                yield tp, m

    def split(self) -> tuple[Batch, Batch]:
        """Two halves, each still contiguous per partition (for bisecting a poison record)."""
        flat = list(self.items())
        half = len(flat) // 2
        a: dict[TopicPartition, list[Record]] = {}
        b: dict[TopicPartition, list[Record]] = {}
        for i, (tp, m) in enumerate(flat):
            (a if i < half else b).setdefault(tp, []).append(m)
        return Batch(a), Batch(b)


@dataclass(slots=True)
class Work:
    """Database work a handler asks of the loop outside a batch (periodic checkpoints, a
    revocation's last save): the loop runs `write` in a transaction of its own, under its lock,
    then `committed` with what `write` returned."""

    write: Callable[[AsyncConnection[DictRow]], Awaitable[Any]]
    committed: Callable[[Any], None] = lambda _: None


class Handler(Protocol):
    """What a service plugs into the loop."""

    # Whether a batch may be cut in halves to isolate a poison record. A handler whose
    # in-memory state a batch has already changed (the runtime) catches bad input per record.
    splittable: bool

    async def prepare(self, batch: Batch) -> Any:
        """Work outside the transaction (parsing, learning)."""
        ...

    async def write(
        self, conn: AsyncConnection[DictRow], batch: Batch, prepared: Any
    ) -> Mapping[TopicPartition, int] | None:
        """The batch's effects, in the transaction; returns checkpoint offsets to record."""
        ...

    def committed(self, batch: Batch, prepared: Any) -> None:
        """After the transaction committed."""
        ...

    async def dead_letter(
        self, conn: AsyncConnection[DictRow], tp: TopicPartition, record: Record, reason: str
    ) -> None:
        """Record a poison record (in the transaction that moves past it)."""
        ...

    def discard(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        """Drop state of these partitions that a failed batch may have changed; returns
        positions to restart from where the batch's first offsets are not enough."""
        ...

    def assigned(
        self, positions: Mapping[TopicPartition, Position]
    ) -> dict[TopicPartition, int | Start]:
        """Where to start newly assigned partitions (absent: the consumer's own position)."""
        ...

    def revoked(self, partitions: Collection[TopicPartition]) -> Work | None:
        """Partitions going to another consumer: last chance to persist their state."""
        ...

    def between(self, *, idle: bool) -> Work | None:
        """Called after every poll (`idle`: it returned nothing): periodic work, if due."""
        ...


class StreamLoop:
    """Runs a handler over a consumer, exactly once per record into the database."""

    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        pool: Pool,
        handler: Handler,
        offsets: OffsetStore,
        group_id: str,
        batch_max_records: int,
        batch_wait_ms: int,
        backoff: Backoff = DEFAULT_BACKOFF,
        stall_s: float = 60.0,
    ) -> None:
        self._consumer = consumer
        self._pool = pool
        self._handler = handler
        self.offsets = offsets
        self.group_id = group_id
        self._batch_max = batch_max_records
        self._batch_wait_ms = batch_wait_ms
        self._backoff = backoff
        # Held while a batch is processed and committed; a revocation waits for it, so the next
        # owner of a partition reads offsets and checkpoints that include every effect.
        self.lock = asyncio.Lock()
        self._unpositioned: set[TopicPartition] = set()
        self.failures = 0
        self.batches = 0
        self._stall_s = stall_s
        # Monotonic times: the last finished poll or retry attempt, and the last time the
        # consumer was known to be fed (records came, or nothing was waiting).
        self._alive = self._fed = time.monotonic()

    def subscribe(self, topics: Iterable[str]) -> None:
        self._consumer.subscribe(list(topics), listener=_Listener(self))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            polling = group.create_task(self._poll_forever(), name=f"{self.group_id}-poll")
            group.create_task(self._watch(polling), name=f"{self.group_id}-watchdog")

    async def _poll_forever(self) -> None:
        while True:
            await self.poll_once()

    # ---- the watchdog ---------------------------------------------------------------------

    async def _watch(self, polling: asyncio.Task[None]) -> None:
        while True:
            await asyncio.sleep(self._stall_s / 4)
            self.check_stall(polling)
            if time.monotonic() - self._fed > self._stall_s:
                await self._check_fed()

    def check_stall(self, polling: asyncio.Task[None]) -> None:
        """Raises `Stalled` when no poll or retry attempt finished within the stall limit."""
        quiet = time.monotonic() - self._alive
        if quiet <= self._stall_s:
            return
        log.critical(
            "consumer %s stuck: no poll finished for %.0f s, waiting in %s; exiting for a "
            "fresh process",
            self.group_id,
            quiet,
            " -> ".join(awaiting(polling.get_coro())),
        )
        raise Stalled(f"{self.group_id}: no poll finished for {quiet:.0f} s")

    async def _check_fed(self) -> None:
        """Records waiting in partitions the consumer fetches, yet none fetched: `Stalled`."""
        paused = self._consumer.paused()
        partitions = self._consumer.assignment() - self._unpositioned - paused
        try:
            ends = await asyncio.wait_for(self._consumer.end_offsets(list(partitions)), 30)
            positions = {tp: await asyncio.wait_for(self._consumer.position(tp), 30) for tp in ends}
        except (KafkaError, TimeoutError) as exc:
            # Kafka away: an outage the consumer waits out by itself, not a stall.
            log.info("watchdog could not read the end offsets: %r", exc)
            return
        waiting = {tp: ends[tp] - positions[tp] for tp in ends if ends[tp] > positions[tp]}
        if not waiting:
            self._fed = time.monotonic()
            return
        if time.monotonic() - self._fed <= self._stall_s:
            return  # records arrived while we asked
        log.critical(
            "consumer %s stuck: %d records wait in %s but none were fetched for %.0f s; "
            "exiting for a fresh process",
            self.group_id,
            sum(waiting.values()),
            sorted(f"{tp.topic}[{tp.partition}]" for tp in waiting),
            time.monotonic() - self._fed,
        )
        raise Stalled(f"{self.group_id}: nothing fetched while records wait")

    async def poll_once(self) -> int:
        """Position new partitions, poll, run the batch; returns the records polled."""
        if self._unpositioned:
            await self._retrying("positioning partitions", self._position)
        try:
            records = await self._consumer.getmany(
                timeout_ms=self._batch_wait_ms, max_records=self._batch_max
            )
        except KafkaError as exc:
            # The consumer reconnects by itself; wait for it instead of dying.
            self.failures += 1
            delay = self._backoff.delay(self.failures - 1)
            log.error("poll failed, retry in %.1f s: %r", delay, exc)
            await asyncio.sleep(delay)
            return 0
        if records:
            self._fed = time.monotonic()
        assigned = self._consumer.assignment()
        # Records of partitions revoked (or not yet positioned) belong to a later poll.
        batch = Batch(
            {
                tp: m
                for tp, m in records.items()
                if m and tp in assigned and tp not in self._unpositioned
            }
        )
        if batch:
            await self._run_batch(batch)

        async def between() -> None:
            async with self.lock:
                await self._transact(self._handler.between(idle=not batch))

        await self._retrying("periodic work", between)
        self._alive = time.monotonic()
        return len(batch)

    # ---- one batch ------------------------------------------------------------------------

    async def _run_batch(self, batch: Batch) -> None:
        try:
            async with self.lock:
                await self._commit_splitting(batch)
        except Fenced as exc:
            BATCHES.labels(self.group_id, "fenced").inc()
            log.warning("fenced (another consumer committed): %s; re-reading positions", exc)
            self._handler.discard(batch.records.keys())
            self.offsets.forget(batch.records.keys())
            self._unpositioned |= set(batch.records) & self._consumer.assignment()
            self._pause(self._unpositioned)
            return
        except Exception as exc:
            BATCHES.labels(self.group_id, "failed").inc()
            self.failures += 1
            FAILING.labels(self.group_id).set(self.failures)
            delay = self._backoff.delay(self.failures - 1)
            log.error(
                "batch of %d records failed (attempt %d); rewinding, retry in %.1f s: %r",
                len(batch),
                self.failures,
                delay,
                exc,
            )
            self._rewind(batch)
            await asyncio.sleep(delay)
            return
        if self.failures:
            log.info("batches go through again after %d failed attempts", self.failures)
        self.failures = 0
        FAILING.labels(self.group_id).set(0)

    async def _commit_splitting(self, batch: Batch) -> None:
        try:
            await self._commit(batch)
        except Exception as exc:
            if not (is_poison(exc) and self._handler.splittable):
                raise
            if len(batch) == 1:
                await self._dead_letter(batch, exc)
                return
            # The state the failed attempt changed is gone with its transaction (a splittable
            # handler keeps none outside it): each half starts clean.
            first, second = batch.split()
            await self._commit_splitting(first)
            await self._commit_splitting(second)

    async def _commit(self, batch: Batch) -> None:
        prepared = await self._handler.prepare(batch)
        async with self._pool.connection() as conn, conn.transaction():
            checkpoints = await self._handler.write(conn, batch, prepared)
            await self.offsets.save(conn, batch.end, checkpoints=checkpoints)
        self._handler.committed(batch, prepared)
        await self.offsets.committed(batch.end)
        self.batches += 1
        BATCHES.labels(self.group_id, "committed").inc()

    async def _dead_letter(self, batch: Batch, exc: BaseException) -> None:
        ((tp, record),) = list(batch.items())
        reason = f"{type(exc).__name__}: {exc}"[:500]
        log.error(
            "poison record %s[%d]@%d dead-lettered: %s",
            tp.topic,
            tp.partition,
            record.offset,
            reason,
        )
        async with self._pool.connection() as conn, conn.transaction():
            await self._handler.dead_letter(conn, tp, record, reason)
            await self.offsets.save(conn, batch.end)
        await self.offsets.committed(batch.end)
        POISON.labels(self.group_id).inc()

    def _rewind(self, batch: Batch) -> None:
        points = batch.start
        points.update(self._handler.discard(batch.records.keys()))
        assigned = self._consumer.assignment()
        for tp, offset in points.items():
            if tp in assigned:
                self._consumer.seek(tp, offset)

    # ---- positions and rebalancing --------------------------------------------------------

    async def _position(self) -> None:
        wanted = self._unpositioned & self._consumer.assignment()
        self._unpositioned = set(wanted)
        if not wanted:
            return
        positions = await self.offsets.load(wanted)
        starts = self._handler.assigned(positions)
        for tp in wanted:
            start = starts.get(tp)
            if start == "beginning":
                await self._consumer.seek_to_beginning(tp)
            elif start == "end":
                await self._consumer.seek_to_end(tp)
            elif isinstance(start, int):
                self._consumer.seek(tp, start)
        self._consumer.resume(*wanted)
        self._unpositioned -= wanted

    def _pause(self, partitions: Collection[TopicPartition]) -> None:
        if partitions:
            self._consumer.pause(*partitions)

    async def on_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._unpositioned |= set(assigned)
        self._pause(assigned)

    async def on_revoked(self, revoked: Collection[TopicPartition]) -> None:
        # Waiting for the lock lets the batch in progress commit first.
        async with self.lock:
            try:
                await self._transact(self._handler.revoked(revoked))
            except Exception as exc:
                # The next owner replays a little more; nothing is lost.
                log.warning("could not persist the state of revoked partitions: %r", exc)
            self._handler.discard(revoked)
            self.offsets.forget(revoked)
            self._unpositioned -= set(revoked)

    async def _transact(self, work: Work | None) -> None:
        """A handler's work outside a batch: one transaction, owned here like a batch's."""
        if work is None:
            return
        async with self._pool.connection() as conn, conn.transaction():
            done = await work.write(conn)
        work.committed(done)

    async def _retrying(self, what: str, work: Callable[[], Awaitable[None]]) -> None:
        await retry_forever(work, what=what, backoff=self._backoff, retried=self._attempted)

    def _attempted(self) -> None:
        # Waiting out an outage, attempt after attempt, is progress (the watchdog).
        self._alive = time.monotonic()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: StreamLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._loop.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self._loop.on_assigned(assigned)
