"""What a domain service plugs into the runtime: a per-device processor."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from shared.runtime.feedback import Feedback
from shared.schemas import AlertEvent, Reading

S = TypeVar("S")
S_contra = TypeVar("S_contra", contravariant=True)


@dataclass
class Effects:
    """What processing a device's readings produced: rows for the service's own tables and
    alert events for Kafka (written to the outbox in the same transaction)."""

    rows: list[Any] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)

    def extend(self, other: Effects) -> None:
        self.rows.extend(other.rows)
        self.events.extend(other.events)


class DeviceProcessor(Protocol, Generic[S]):
    """A domain service's logic. `process` must be deterministic given the state and one
    message's readings: that is what makes a replay after a crash produce exactly the same
    outputs. Where its rows go is the service's wiring (a row sink), not the processor's."""

    # Recorded with each checkpoint; a checkpoint of another version is discarded on load.
    model_version: str

    def new_state(self, device_id: str) -> S: ...

    def process(self, state: S, *, device_id: str, readings: list[Reading]) -> Effects: ...


@runtime_checkable
class Adopts(Protocol, Generic[S]):
    """A processor that can keep a state saved under another model version when only a part
    it can rebuild differs (e.g. the energy meter's forecaster): the rest of what the device
    learnt (its detector, warm-up, technicians' verdicts) survives an upgrade.

    `adopt` gets the stored version and the unpickled state (its checkpoint's HMAC already
    verified) and returns the state to use, or None to start afresh."""

    def adopt(self, state: S, *, stored_version: str) -> S | None: ...


@runtime_checkable
class TakesFeedback(Protocol, Generic[S_contra]):
    """A processor that takes technicians' verdicts into account (shared/runtime/feedback.py).

    `apply_feedback` is offered a verdict again before every record within the offer horizon:
    it must apply each one once (recording which it has in the state, so that a checkpoint
    carries it), and deterministically, like `process`. `received_at` is when the record about
    to be processed was received: a clock for forgetting old verdicts.
    """

    def apply_feedback(
        self, state: S_contra, feedback: Feedback, *, received_at: datetime
    ) -> None: ...


def fresh(readings: Iterable[Reading], clock: datetime | None) -> list[Reading]:
    """A message's readings as the runtime feeds them to a processor: in time order, those at or
    before the device's clock (the newest reading it learned from) left out as late."""
    ordered = sorted(readings, key=lambda r: (r.ts, r.metric))
    return [r for r in ordered if clock is None or r.ts > clock]


def replay(
    processor: DeviceProcessor[S],
    *,
    device_id: str,
    messages: Iterable[Sequence[Reading]],
    state: S | None = None,
) -> list[AlertEvent]:
    """The alert events a device's messages give, processed as the runtime processes them
    (same order, same late readings left out), without Kafka or a database: what an evaluation
    or a benchmark needs to count the alerts the service would have raised. The derived rows
    (scores, forecasts) are not kept."""
    own = processor.new_state(device_id) if state is None else state
    clock: datetime | None = None
    events: list[AlertEvent] = []
    for message in messages:
        readings = fresh(message, clock)
        if not readings:
            continue
        clock = readings[-1].ts
        events += processor.process(own, device_id=device_id, readings=readings).events
    return events
