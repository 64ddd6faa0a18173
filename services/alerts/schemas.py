"""Request and response bodies of the alerts API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from services.alerts.domain.feedback import NOTE_MAX_CHARS, Verdict
from shared.inputs import Finite, OutboundUrl
from shared.schemas import Severity
from shared.topics import AlertDomain, Domain

# An alert's changes, and `report.published` (the operator API's monthly report, with its
# download link: a subscription asks for it by name; domain and severity filters are the
# alerts').
EventType = Literal["opened", "updated", "acknowledged", "resolved", "report.published"]
METRIC_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
KIND_PATTERN = r"^[a-z0-9][a-z0-9_.:-]{0,127}$"


class TimelineEntry(BaseModel):
    at: datetime
    type: str
    detail: dict[str, Any]


class FeedbackIn(BaseModel):
    verdict: Verdict = Field(
        description="real: a fault worth the visit; false_alarm: nothing was wrong (the "
        "device's model recalibrates); expected: planned works, an event (kept out of learning)"
    )
    note: str = Field(default="", max_length=NOTE_MAX_CHARS)


class FeedbackOut(BaseModel):
    id: int
    alert_id: str
    verdict: Verdict
    note: str
    episode_start: datetime
    episode_end: datetime | None
    given_at: datetime
    given_by: str


class DomainPrecisionOut(BaseModel):
    domain: str
    precision: float | None = Field(description="real / (real + false_alarm); null: none judged")
    real: int
    false_alarm: int
    expected: int
    with_feedback: int
    without_feedback: int


class PrecisionOut(BaseModel):
    days: int
    since: datetime
    domains: list[DomainPrecisionOut]


class AlertOut(BaseModel):
    id: str
    device_id: str
    domain: str
    kind: str
    state: str
    severity: Severity
    count: int
    first_seen: datetime
    last_seen: datetime
    opened_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    peak_value: float | None
    signal_active: bool
    rule_id: str | None
    explanation: dict[str, Any]
    version: int
    feedback: FeedbackOut | None = Field(
        default=None, description="the verdict that counts (the latest), if any"
    )


class AlertDetail(AlertOut):
    damping: dict[str, float]
    timeline: list[TimelineEntry]


class ActionIn(BaseModel):
    note: str = Field(default="", max_length=1000)


class RuleIn(BaseModel):
    name: str = Field(default="", max_length=200)
    domain: Domain
    device_id: str | None = None
    metric: str = Field(pattern=METRIC_PATTERN, description="for op 'silent', any placeholder")
    op: Literal[">=", ">", "<=", "<", "silent"]
    threshold: Finite = Field(description="for op 'silent': how many usual periods of silence")
    hysteresis: Finite = Field(default=0.0, ge=0)
    severity: Severity = Severity.WARNING
    kind: str | None = Field(default=None, pattern=KIND_PATTERN)
    min_duration_s: Finite = Field(default=0.0, ge=0, le=7 * 86400)
    cooldown_s: Finite = Field(default=60.0, ge=0, le=7 * 86400)
    enabled: bool = True

    @model_validator(mode="after")
    def _silent_needs_factor(self) -> RuleIn:
        if self.op == "silent" and self.threshold <= 0:
            raise ValueError("a 'silent' rule needs a positive threshold (periods of silence)")
        return self


class RuleOut(BaseModel):
    id: str
    name: str
    domain: Domain
    device_id: str | None
    metric: str
    op: str
    threshold: float
    hysteresis: float
    severity: Severity
    kind: str
    min_duration_s: float
    cooldown_s: float
    enabled: bool
    created_at: datetime
    updated_at: datetime


def _all_event_types() -> list[EventType]:
    return ["opened", "updated", "acknowledged", "resolved"]


class WebhookPatch(BaseModel):
    url: OutboundUrl | None = None
    description: str | None = Field(default=None, max_length=500)
    # "platform": the stack's own early warnings (disk, backups, certificates, restarts).
    domains: list[AlertDomain] | None = None
    kinds: list[str] | None = None
    min_severity: Severity | None = None
    event_types: list[EventType] | None = Field(default=None, min_length=1)
    retry_schedule_s: list[int] | None = Field(default=None, min_length=1, max_length=20)
    enabled: bool | None = None

    @field_validator("retry_schedule_s")
    @classmethod
    def _schedule(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and not all(1 <= s <= 86400 for s in v):
            raise ValueError("each retry delay is 1 to 86400 seconds")
        return v


class WebhookIn(WebhookPatch):
    url: OutboundUrl
    description: str = Field(default="", max_length=500)
    min_severity: Severity = Severity.INFO
    event_types: list[EventType] = Field(default_factory=_all_event_types, min_length=1)
    enabled: bool = True


class WebhookOut(BaseModel):
    id: str
    url: str
    description: str
    domains: list[str] | None
    kinds: list[str] | None
    min_severity: Severity
    event_types: list[str]
    retry_schedule_s: list[int] | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="shown once: store it now")


class RotateIn(BaseModel):
    overlap_s: Finite | None = Field(
        default=None, ge=0, le=7 * 86400, description="how long the old secret still signs"
    )


class RotateOut(BaseModel):
    secret: str = Field(description="shown once: store it now")
    previous_secret_expires_at: datetime


class TestSendOut(BaseModel):
    msg_id: str
    status_code: int | None
    latency_ms: float
    error: str | None
    delivered: bool = Field(description="the receiver answered 2xx")


class AttemptOut(BaseModel):
    attempt: int
    started_at: datetime
    latency_ms: float
    status_code: int | None
    error: str | None
    outcome: str


class DeliveryOut(BaseModel):
    id: int
    msg_id: str
    alert_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[AttemptOut]
