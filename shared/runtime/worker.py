"""The runtime: per-device models learnt from every reading, exactly once, on the stream core.

It is a `shared.stream.loop.Handler`. A committed batch is one database transaction holding
  1. the rows the processor derived (written by the service's row sink),
  2. the alert events to emit (outbox; a relay sends them to Kafka afterwards),
  3. poison readings the processor raised on (dead letters),
  4. the next offset of every partition (compare-and-set, see shared/stream/offsets.py),
and the checkpoints of the models that are due, with the offset the partition's checkpoints
then cover (the partition's checkpoint offset). A model is due once it has been dirty (changed
since its checkpoint) for `checkpoint_interval_s` seconds, or when its partition would replay
more than `checkpoint_interval_records` records; due models are pickled oldest first, for at
most `checkpoint_budget_s` per batch, so that checkpoints are spread over batches instead of
holding the stream for seconds every interval (docs/performance.md).

Checkpoints on an interval, replay in between: each device's state records the offset after the
last record applied to it (`applied`), and a dirty one the offset of the first record it has not
checkpointed (`dirty_from`). A partition's checkpoint offset C is the smallest `dirty_from` of its
dirty states (its position when none is dirty): every state's checkpoint covers every record
before C. After a restart, a rebalance or a failed batch, a
partition restarts at its checkpoint offset C, not at its committed offset Y: records from C to Y
are replayed into the models without emitting anything (their effects were committed), records
at or after Y emit as usual, and a record below a device's `applied` is skipped (that device's
state was checkpointed later than C, e.g. on eviction). Processing is deterministic and
per message, in offset order, so the replayed models are those an uninterrupted run had, and
the derived rows are identical (docs/runtime.md says why this is exactly once).

Late and out-of-order readings: each device has a clock (the newest reading it learned from).
Readings at or before the clock are not learned from or scored (the storage service stores them
all the same); they are counted in `townpulse_runtime_late_readings_total`.

Memory: at most `max_devices` states are kept, least recently used first out; a dirty state is
checkpointed in the transaction that evicts it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from aiokafka import TopicPartition
from prometheus_client import Counter, Gauge
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import ValidationError

from shared.db import Pool
from shared.deadletters import write_deadletters
from shared.runtime.checkpoints import CheckpointKey, Verdict

# ErasedMeanwhile is the runtime's failure too (a batch raced an erasure): importable here.
from shared.runtime.erasures import ErasedMeanwhile as ErasedMeanwhile
from shared.runtime.erasures import ErasureGuard
from shared.runtime.feedback import Feedback, due, feedback_of
from shared.runtime.outbox import enqueue
from shared.runtime.processor import DeviceProcessor, Effects, TakesFeedback, fresh
from shared.runtime.states import StateStore
from shared.schemas import AlertEvent, DeadLetter, ReadingBatch, Severity
from shared.stream.loop import Batch, Record, Start, Work
from shared.stream.offsets import DbOffsets, Position
from shared.topics import Domain

log = logging.getLogger(__name__)

S = TypeVar("S")

# The alert kind of a refused checkpoint (shared/runtime/checkpoints.py).
CHECKPOINT_REFUSED = "runtime.checkpoint_refused"

# Where the derived rows go: the service's adapter, handed in by its wiring (the domain imports
# no adapter).
RowSink = Callable[[AsyncConnection[DictRow], list[Any]], Awaitable[None]]

READINGS = Counter("townpulse_runtime_readings_total", "Readings processed", ["group"])
REPLAYED = Counter(
    "townpulse_runtime_replayed_total", "Records replayed from a checkpoint", ["group"]
)
LATE = Counter(
    "townpulse_runtime_late_readings_total", "Readings older than the model clock", ["group"]
)
UNREADABLE = Counter("townpulse_runtime_unreadable_total", "Records matching no schema", ["group"])
FAILED = Counter(
    "townpulse_runtime_processor_errors_total", "Messages the processor raised on", ["group"]
)
CHECKPOINTS = Counter(
    "townpulse_runtime_checkpointed_states_total", "Device states checkpointed", ["group"]
)
EVICTED = Counter("townpulse_runtime_evicted_total", "Device states evicted from memory", ["group"])
CACHED = Gauge("townpulse_runtime_cached_devices", "Device states in memory", ["group"])


@dataclass
class DeviceSlot(Generic[S]):
    state: S
    clock: datetime | None
    partition: TopicPartition
    # Next offset (in `partition`) after the last record this state has seen.
    applied: int
    # While dirty (in `DeviceRuntime._dirty`): the first record not in its checkpoint, and since
    # when (monotonic seconds).
    dirty_from: int = 0
    dirty_since: float = 0.0
    # When the first record this state learnt from was received (None: it learnt nothing). A
    # state learnt from before its device's erasure must never be saved again.
    since: datetime | None = None


@dataclass
class Prepared:
    effects: Effects = field(default_factory=Effects)
    deadletters: list[tuple[TopicPartition, int, DeadLetter]] = field(default_factory=list)
    # Filled by write(): what the transaction checkpointed and evicts.
    flushed: list[str] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    checkpoints: dict[TopicPartition, int] = field(default_factory=dict)
    # The devices of the batch, whose erasures write() checks again.
    devices: set[str] = field(default_factory=set)
    # Technicians' verdicts on the batch's devices (shared/runtime/feedback.py).
    feedback: dict[str, list[Feedback]] = field(default_factory=dict)


class DeviceRuntime(Generic[S]):
    """Runs a `DeviceProcessor` over readings topics (a stream-core handler)."""

    splittable = False

    def __init__(
        self,
        *,
        processor: DeviceProcessor[S],
        sink: RowSink,
        pool: Pool,
        offsets: DbOffsets,
        group_id: str,
        max_devices: int = 2000,
        checkpoint_interval_s: float = 30.0,
        checkpoint_interval_records: int = 50_000,
        checkpoint_budget_s: float = 0.05,
        on_events: Callable[[], None] = lambda: None,
        checkpoint_key: CheckpointKey | None = None,
        accept_unsigned: bool = False,
        domain: Domain | None = None,
    ) -> None:
        self.processor = processor
        self.states = StateStore(
            group_id=group_id,
            processor=processor,
            key=checkpoint_key or CheckpointKey.ephemeral(),
            accept_unsigned=accept_unsigned,
        )
        self._domain = domain
        self._sink = sink
        self._pool = pool
        self._offsets = offsets
        self.group_id = group_id
        # Per reading, `labels()` was a lock and a dict look-up every time (storage's profile:
        # 12 % of its samples for the same pattern): the children are looked up once.
        self._m_readings = READINGS.labels(group_id)
        self._m_replayed = REPLAYED.labels(group_id)
        self._m_late = LATE.labels(group_id)
        self.max_devices = max_devices
        self._interval_s = checkpoint_interval_s
        self._interval_records = checkpoint_interval_records
        self._budget_s = checkpoint_budget_s
        self._on_events = on_events
        self.cache: OrderedDict[str, DeviceSlot[S]] = OrderedDict()
        # Dirty devices, in the order they became dirty (oldest first).
        self._dirty: OrderedDict[str, None] = OrderedDict()
        # Per partition: the next offset processed in memory, and the checkpoint offset.
        self._position: dict[TopicPartition, int] = {}
        self._checkpoint: dict[TopicPartition, int] = {}
        # Devices an operator erased (shared/erasure.py): their models are dropped, and records
        # received before the erasure (still in Kafka) are not learnt or scored again.
        self.erasures = ErasureGuard(pool)

    # ---- the stream core's handler --------------------------------------------------------

    async def prepare(self, batch: Batch) -> Prepared:
        parsed: list[tuple[TopicPartition, Record, ReadingBatch]] = []
        for tp, m in batch.items():
            try:
                parsed.append((tp, m, ReadingBatch.from_bytes(m.value)))
            except (ValidationError, ValueError):
                # The storage service dead-letters these; here they are only skipped.
                UNREADABLE.labels(self.group_id).inc()
        devices = {rb.device_id for _, _, rb in parsed}
        await self._read_erasures(devices)
        refused = await self._load_missing({rb.device_id: tp for tp, _, rb in parsed})
        out = Prepared(devices=devices, feedback=await self._read_feedback(parsed))
        # Written to the outbox with the batch (replayed batches raise them again with the same
        # event ids, which the alerts service deduplicates).
        out.effects.events.extend(refused)
        for tp, m, rb in parsed:
            self._checkpoint.setdefault(tp, batch.start[tp])
            self._one(tp, m, rb, out)
        for tp, end in batch.end.items():
            self._position[tp] = end
        return out

    def _one(self, tp: TopicPartition, m: Record, rb: ReadingBatch, out: Prepared) -> None:
        if self.erasures.forgets(rb.device_id, received_at=rb.received_at):
            return  # erased with everything else about the device
        slot = self.cache[rb.device_id]
        self.cache.move_to_end(rb.device_id)
        if m.offset < slot.applied:
            return  # this state was checkpointed after this record
        committed = self._offsets.known(tp)
        emit = committed is None or m.offset >= committed
        slot.applied = m.offset + 1
        if rb.device_id not in self._dirty:
            slot.dirty_from, slot.dirty_since = m.offset, time.monotonic()
            self._dirty[rb.device_id] = None
        if isinstance(self.processor, TakesFeedback):
            # Before the record: a verdict counts from the first reading received after it.
            for f in due(out.feedback.get(rb.device_id, []), received_at=rb.received_at):
                self.processor.apply_feedback(slot.state, f, received_at=rb.received_at)
        readings = fresh(rb.readings, slot.clock)
        if not emit:
            self._m_replayed.inc()
        elif len(readings) < len(rb.readings):
            self._m_late.inc(len(rb.readings) - len(readings))
        if not readings:
            return
        slot.clock = readings[-1].ts
        if slot.since is None:
            slot.since = rb.received_at
        try:
            effects = self.processor.process(slot.state, device_id=rb.device_id, readings=readings)
        except Exception as exc:
            # A reading the model cannot take. The state may be half-updated, but identically
            # so in every replay: determinism holds. The message is kept as a dead letter.
            if emit:
                FAILED.labels(self.group_id).inc()
                log.exception("processor failed on %s@%d", tp.topic, m.offset)
                out.deadletters.append((tp, m.offset, _deadletter(rb, m, exc)))
            return
        if emit:
            out.effects.extend(effects)
            self._m_readings.inc(len(readings))

    async def write(
        self, conn: AsyncConnection[DictRow], batch: Batch, prepared: Prepared
    ) -> Mapping[TopicPartition, int] | None:
        # Held to the commit: every row below, states included, is written under it.
        await self.erasures.hold(conn, prepared.devices)
        await self._sink(conn, prepared.effects.rows)
        await enqueue(conn, prepared.effects.events)
        if prepared.deadletters:
            await write_deadletters(conn, prepared.deadletters)
        prepared.evicted = list(self.cache)[: max(0, len(self.cache) - self.max_devices)]
        # Evicted states must be saved; due ones are, oldest first, within the time budget.
        evicted_dirty = [d for d in prepared.evicted if d in self._dirty]
        rows = self._state_rows(evicted_dirty)
        flushed = set(evicted_dirty)
        now = time.monotonic()
        over = self._replay_over_bound()
        started = time.perf_counter()
        for d in self._dirty:
            slot = self.cache[d]
            if now - slot.dirty_since < self._interval_s and slot.partition not in over:
                # Younger than the interval and no replay bound crossed: neither is any later
                # one of this partition, but another partition's may still be over its bound.
                if not over:
                    break
                continue
            if d not in flushed:
                rows += self._state_rows([d])
                flushed.add(d)
            if time.perf_counter() - started >= self._budget_s:
                break  # at least one per batch, so the checkpoints always move
        prepared.flushed = [r["device_id"] for r in rows]
        prepared.checkpoints = self._checkpoint_offsets(batch.end, flushed)
        await self.states.save(conn, rows)
        return prepared.checkpoints or None

    def committed(self, batch: Batch, prepared: Prepared) -> None:
        self._committed_states(prepared)
        if prepared.effects.events:
            self._on_events()

    async def dead_letter(
        self, conn: AsyncConnection[DictRow], tp: TopicPartition, record: Record, reason: str
    ) -> None:
        raise AssertionError("the runtime is not splittable")  # pragma: no cover

    def discard(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        doomed = set(partitions)
        for device_id in [d for d, s in self.cache.items() if s.partition in doomed]:
            del self.cache[device_id]
            self._dirty.pop(device_id, None)
        CACHED.labels(self.group_id).set(len(self.cache))
        restart = {tp: self._checkpoint[tp] for tp in doomed if tp in self._checkpoint}
        for tp in doomed:
            self._position.pop(tp, None)
        return restart

    def assigned(
        self, positions: Mapping[TopicPartition, Position]
    ) -> dict[TopicPartition, int | Start]:
        starts: dict[TopicPartition, int | Start] = {}
        for tp, pos in positions.items():
            if pos.checkpoint is None:
                # No checkpoint covers this partition yet (or nothing was ever committed): every
                # model is rebuilt from the start of the log; records before the committed
                # offset replay without emitting.
                self._checkpoint.pop(tp, None)
                starts[tp] = "beginning"
                continue
            self._checkpoint[tp] = pos.checkpoint
            starts[tp] = pos.checkpoint
        return starts

    def revoked(self, partitions: Collection[TopicPartition]) -> Work | None:
        """Checkpoint what the next owner would otherwise have to replay."""
        revoked = set(partitions)
        flushed = [d for d in self._dirty if self.cache[d].partition in revoked]
        checkpoints = {
            tp: c for tp, c in self._checkpoint_offsets({}, set(flushed)).items() if tp in revoked
        }
        return self._checkpointing(flushed, checkpoints)

    def between(self, *, idle: bool) -> Work | None:
        """A quiet stream still gets its checkpoints on time: all of them, nothing waits."""
        if not idle or not self._dirty:
            return None
        oldest = self.cache[next(iter(self._dirty))]
        if time.monotonic() - oldest.dirty_since < self._interval_s:
            return None
        flushed = list(self._dirty)
        return self._checkpointing(flushed, self._checkpoint_offsets({}, set(flushed)))

    def _checkpointing(
        self, flushed: list[str], checkpoints: dict[TopicPartition, int]
    ) -> Work | None:
        """Saving these states and checkpoint offsets outside a batch."""
        if not flushed and not checkpoints:
            return None
        prepared = Prepared(flushed=flushed, checkpoints=checkpoints)

        async def write(conn: AsyncConnection[DictRow]) -> None:
            await self._save_states(conn, prepared.flushed)
            await self._offsets.save(conn, {}, checkpoints=prepared.checkpoints)

        return Work(write=write, committed=lambda _: self._committed_states(prepared))

    async def _read_erasures(self, device_ids: set[str]) -> None:
        """Erasures of this batch's devices: a newly erased one's model goes from memory (its
        checkpoint is gone from the database)."""
        for device_id in await self.erasures.read(device_ids):
            self.cache.pop(device_id, None)
            self._dirty.pop(device_id, None)

    async def _read_feedback(
        self, parsed: list[tuple[TopicPartition, Record, ReadingBatch]]
    ) -> dict[str, list[Feedback]]:
        """Verdicts on this batch's devices (one indexed query), for processors that take them."""
        if not parsed or not isinstance(self.processor, TakesFeedback):
            return {}
        received = [rb.received_at for _, _, rb in parsed]
        async with self._pool.connection() as conn:
            return await feedback_of(
                conn,
                {rb.device_id for _, _, rb in parsed},
                received_from=min(received),
                received_to=max(received),
            )

    # ---- checkpoints --------------------------------------------------------------------------

    def _checkpoint_offsets(
        self, ends: Mapping[TopicPartition, int], flushed: Collection[str]
    ) -> dict[TopicPartition, int]:
        """Where each partition's checkpoint moves once `flushed` are saved: the first record
        a state left dirty has not checkpointed, or the position in memory when none is left
        (only partitions we own, whose offsets are stored; only forwards)."""
        oldest: dict[TopicPartition, int] = {}
        for d in self._dirty:
            slot = self.cache[d]
            if d not in flushed:
                oldest[slot.partition] = min(
                    oldest.get(slot.partition, slot.dirty_from), slot.dirty_from
                )
        out = {}
        for tp, pos in self._position.items():
            if tp not in ends and self._offsets.known(tp) is None:
                continue
            at = oldest.get(tp, pos)
            if at > self._checkpoint.get(tp, -1):
                out[tp] = at
        return out

    def _replay_over_bound(self) -> set[TopicPartition]:
        """Partitions that would replay more than `checkpoint_interval_records` records."""
        return {
            tp
            for tp, pos in self._position.items()
            if pos - self._checkpoint.get(tp, pos) > self._interval_records
        }

    def _committed_states(self, prepared: Prepared) -> None:
        for d in prepared.flushed:
            self._dirty.pop(d, None)
        CHECKPOINTS.labels(self.group_id).inc(len(prepared.flushed))
        if prepared.checkpoints:
            self._checkpoint.update(prepared.checkpoints)
        for d in prepared.evicted:
            if self.cache.pop(d, None) is not None:
                EVICTED.labels(self.group_id).inc()
        CACHED.labels(self.group_id).set(len(self.cache))

    def _state_rows(self, device_ids: list[str]) -> list[dict[str, Any]]:
        rows = []
        for d in device_ids:
            slot = self.cache[d]
            rows.append(
                self.states.row(
                    d, state=slot.state, clock=slot.clock, applied=slot.applied, since=slot.since
                )
            )
        return rows

    async def _save_states(self, conn: AsyncConnection[DictRow], device_ids: list[str]) -> None:
        """Checkpoints outside a batch (revocation, an idle stream): under the erasure lock too."""
        if device_ids:
            # No device list: a state erased meanwhile is not saved (StateStore.save checks),
            # and nothing else is written that it could void.
            await self.erasures.hold(conn, ())
            await self.states.save(conn, self._state_rows(device_ids))

    async def _load_missing(self, where: dict[str, TopicPartition]) -> list[AlertEvent]:
        """Device states not in memory, from their checkpoints; returns the alerts of
        checkpoints refused (their models start fresh)."""
        refused: list[AlertEvent] = []
        missing = [d for d in where if d not in self.cache]
        if not missing:
            return refused
        async with self._pool.connection() as conn:
            stored = await self.states.fetch(conn, missing)
        for device_id in missing:
            row = stored.get(device_id)
            if row is not None and self.erasures.voids(device_id, learnt_since=row["learnt_since"]):
                # Saved before the erasure lock existed, or by hand: never restored.
                self.states.discard(
                    device_id, "discarding checkpoint learnt before the device's erasure"
                )
                row = None
            if row is not None and (verdict := self.states.verdict(row)) is not None:
                # Never loaded: the model starts fresh and an alert says so.
                if (
                    event := self._refused_alert(device_id, verdict, row["updated_at"])
                ) is not None:
                    refused.append(event)
                row = None
            state = self.states.restore(row) if row is not None else None
            self.cache[device_id] = DeviceSlot(
                state=state if state is not None else self.processor.new_state(device_id),
                clock=row["clock"] if row is not None else None,
                partition=where[device_id],
                applied=int(row["applied_offset"] or 0) if row is not None else 0,
                since=_learnt_since(row, state),
            )
        return refused

    def _refused_alert(
        self, device_id: str, verdict: Verdict, since: datetime
    ) -> AlertEvent | None:
        """An alert like the episodes' (the alerts service opens it). Its id comes from the
        refused row's time: refusing the same row again raises no second one."""
        if self._domain is None:
            return None
        kind = CHECKPOINT_REFUSED
        return AlertEvent(
            event_id=AlertEvent.make_id(
                device_id=device_id, kind=kind, episode_start=since, phase="start"
            ),
            device_id=device_id,
            domain=self._domain,
            kind=kind,
            phase="start",
            severity=Severity.CRITICAL,
            episode_start=since,
            ts=datetime.now(UTC),
            explanation={
                "message": f"model checkpoint {verdict.value}: refused, the model starts fresh;"
                " someone may have written to runtime_state",
                "verdict": verdict.value,
            },
        )


def _deadletter(rb: ReadingBatch, m: Record, exc: BaseException) -> DeadLetter:
    raw = m.value or b""
    return DeadLetter(
        received_at=rb.received_at,
        topic=f"kafka:{m.topic}",
        device_id=rb.device_id,
        reason="processing_failed",
        detail=f"{type(exc).__name__}: {exc}"[:500],
        payload=raw[:1024].decode("utf-8", "replace"),
        payload_size=len(raw),
    )


def _learnt_since(row: DictRow | None, state: object) -> datetime | None:
    """Since when a restored state learns; a row saved before that was recorded: of unknown age,
    the oldest possible, so that any later erasure of its device keeps it from being saved."""
    if row is None or state is None:
        return None
    since: datetime | None = row["learnt_since"]
    return since if since is not None else datetime.min.replace(tzinfo=UTC)
