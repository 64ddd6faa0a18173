"""Request and response bodies of the operator API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, Field

from shared.auth import Role
from shared.topics import Domain

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Location(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class DeviceIn(BaseModel):
    id: str = Field(pattern=DEVICE_ID_PATTERN)
    domain: Domain
    name: str | None = Field(default=None, max_length=200)
    location: Location | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Device(BaseModel):
    id: str
    domain: Domain
    name: str | None
    location: Location | None
    metadata: dict[str, Any]
    created_at: datetime
    topic: str


class MqttCredentials(BaseModel):
    host: str
    # Plain MQTT: only reachable on the broker's own machine unless the town opened it.
    port: int
    # MQTT over TLS, verified with `ca_certificate` (PEM): what a device on the network uses.
    tls_port: int | None = None
    ca_certificate: str | None = None
    username: str
    password: str
    topic: str
    qos: int = 1


class DeviceCreated(BaseModel):
    device: Device
    mqtt: MqttCredentials


class BulkRow(BaseModel):
    """One input row's outcome; `mqtt` only for `created` (shown this once)."""

    row: int = Field(description="Position in the request, from 0 (CSV: data rows only).")
    id: str | None
    status: Literal["created", "exists", "error"]
    device: Device | None = None
    mqtt: MqttCredentials | None = None
    error: str | None = None


class BulkResult(BaseModel):
    created: int
    exists: int
    errors: int
    rows: list[BulkRow]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int


class RawReading(BaseModel):
    ts: datetime
    metric: str
    value: float
    unit: str | None = None


class BucketReading(BaseModel):
    bucket: datetime
    metric: str
    avg: float
    min: float
    max: float
    count: int


class Readings(BaseModel):
    device_id: str
    start: AwareDatetime
    end: AwareDatetime
    bucket: str | None
    items: list[RawReading] | list[BucketReading]
    truncated: bool = Field(
        description="true when `limit` cut the result: ask again from the last ts"
    )


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    detail: str
    payload: str
    payload_size: int


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.OPERATOR


class ApiKeyOut(BaseModel):
    id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="shown once: store it now")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    key_id: str | None
    role: str | None
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]


class RetentionTable(BaseModel):
    table: str
    oldest: datetime | None = Field(description="The oldest row kept (its age column).")


class RetentionClass(BaseModel):
    name: str
    description: str
    days: int | None = Field(description="Kept this many days; null: kept for ever.")
    enforced_by: str
    oldest: datetime | None
    tables: list[RetentionTable]


class Erasure(BaseModel):
    device_id: str
    rows: dict[str, int] = Field(description="Rows erased per table.")
    aggregates: str = Field(description="'erased', or 'anonymised' (kept under anonymous_id).")
    anonymous_id: str | None
