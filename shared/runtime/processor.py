"""What a domain service plugs into the runtime: a per-device processor."""

from __future__ import annotations

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
