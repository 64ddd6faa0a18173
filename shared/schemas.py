"""Message schemas, defined once for every producer and consumer.

A `ReadingBatch` is what the gateway produces for one accepted MQTT message (a flat JSON object
or a SenML pack both become one batch); a `DeadLetter` is what it produces for a rejected one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.topics import DEVICE_ID_RE, AlertDomain, Domain


class Reading(BaseModel):
    # The gateway checks all of this already; the schema repeats it for any other producer on
    # Kafka, so a NaN or a NUL never reaches a model or the database.
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    ts: AwareDatetime
    metric: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    value: float
    unit: str | None = Field(default=None, max_length=32, pattern=r"^[^\x00-\x1f]*$")


class UplinkMeta(BaseModel):
    """Where a batch came from when a network server or a device's own format brought it:
    its frame counter, which codec version decoded it, and the radio link (the device's link
    health). Storage keeps one row per uplink (`device_uplinks`)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    ts: AwareDatetime
    source: str = Field(max_length=32)
    f_port: int | None = Field(default=None, ge=0, le=255)
    f_cnt: int | None = Field(default=None, ge=0, le=2**32 - 1)
    codec: str | None = Field(default=None, max_length=64)
    codec_version: int | None = Field(default=None, ge=1)
    rssi: float | None = Field(default=None, ge=-200, le=50)
    snr: float | None = Field(default=None, ge=-50, le=50)
    gateways: int | None = Field(default=None, ge=0, le=1000)


class ReadingBatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    device_id: str = Field(pattern=DEVICE_ID_RE.pattern)
    domain: Domain
    received_at: AwareDatetime
    readings: list[Reading]
    uplink: UplinkMeta | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ReadingBatch:
        return cls.model_validate_json(raw)


class DeadLetter(BaseModel):
    """A rejected message: why, from where, and (truncated) what."""

    model_config = ConfigDict(frozen=True)

    received_at: AwareDatetime
    topic: str
    device_id: str | None = None
    reason: str
    detail: str = ""
    payload: str = Field(default="", description="the payload, decoded leniently and truncated")
    payload_size: int = 0

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> DeadLetter:
        return cls.model_validate_json(raw)


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return ("info", "warning", "critical").index(self.value)


class AlertEvent(BaseModel):
    """An anomaly episode starting or ending, as emitted by a domain service on `alerts`.

    One event when an episode starts and one when it ends, never one per reading. `event_id` is
    derived from the episode, so a re-emitted event (at-least-once relay) has the same id.
    """

    model_config = ConfigDict(frozen=True)

    event_id: str
    device_id: str = Field(description="the device, or what the platform watches ('disk-kafka')")
    domain: AlertDomain
    kind: str = Field(description="what went wrong, e.g. 'energy.consumption_high'")
    phase: Literal["start", "end"]
    severity: Severity
    episode_start: AwareDatetime
    ts: AwareDatetime = Field(description="time of the reading that started or ended it")
    explanation: dict[str, Any] = Field(
        default_factory=dict,
        description="expected vs observed: {'expected':..., 'observed':..., 'message':...}",
    )

    @staticmethod
    def make_id(*, device_id: str, kind: str, episode_start: datetime, phase: str) -> str:
        return f"{device_id}:{kind}:{episode_start.isoformat()}:{phase}"

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> AlertEvent:
        return cls.model_validate_json(raw)
