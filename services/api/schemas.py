"""Request and response bodies of the operator API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.auth import Role
from shared.inputs import Finite
from shared.mqtt_admin import reserved_reason
from shared.topics import Domain

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# As the devices and device_profiles tables check them (migration 0008).
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
PROFILE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


def normalise_dev_eui(value: str) -> str:
    """16 lower-case hex digits, from what labels and network servers' consoles print.

    >>> normalise_dev_eui("24-E1-24:12 6B31 6584")
    '24e124126b316584'
    >>> normalise_dev_eui("24e1")
    Traceback (most recent call last):
    ...
    ValueError: a DevEUI is 16 hex digits (bytes may be separated by ':', '-' or spaces)
    """
    digits = re.sub(r"[\s:-]", "", value).lower()
    if not re.fullmatch(r"[0-9a-f]{16}", digits):
        raise ValueError("a DevEUI is 16 hex digits (bytes may be separated by ':', '-' or spaces)")
    return digits


class Location(BaseModel):
    lat: Finite = Field(ge=-90, le=90)
    lon: Finite = Field(ge=-180, le=180)


class DevicePatch(BaseModel):
    """What a technician changes after installation: a name, where it stands, its settings
    (a bin's depth, a meter's kWh per pulse), its profile (of the same domain)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    location: Location | None = None
    metadata: dict[str, Any] | None = Field(
        default=None, description="Replaces the device's settings (e.g. bin_depth_mm)."
    )
    profile: str | None = Field(default=None, pattern=PROFILE_PATTERN)


class DeviceIn(BaseModel):
    """A registration. A LoRaWAN device is named by its DevEUI, a device pushing over HTTP or
    through a vendor's cloud by its own id (`external_id`): either stands for `id` when it is
    omitted, and a `profile` for `domain` (the profile's)."""

    id: str | None = Field(
        default=None,
        pattern=DEVICE_ID_PATTERN,
        description="Default: `eui-<dev_eui>`, else the external_id (when valid as an id).",
    )
    domain: Domain | None = Field(default=None, description="Default: the profile's domain.")
    name: str | None = Field(default=None, max_length=200)
    location: Location | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    dev_eui: str | None = Field(
        default=None,
        description="LoRaWAN DevEUI: 16 hex digits, any case, bytes optionally separated by "
        "`:`, `-` or spaces; stored as 16 lower-case digits. Such a device gets no MQTT "
        "credentials: its network server forwards its uplinks.",
        examples=["24e124126b316584"],
    )
    external_id: str | None = Field(
        default=None,
        pattern=EXTERNAL_ID_PATTERN,
        description="The id a vendor's cloud or the device itself sends (HTTP push, mapped JSON).",
    )
    profile: str | None = Field(
        default=None,
        pattern=PROFILE_PATTERN,
        description="The device profile mapping its decoded fields to metrics (GET /v1/profiles).",
    )

    @field_validator("dev_eui")
    @classmethod
    def _dev_eui(cls, value: str | None) -> str | None:
        return None if value is None else normalise_dev_eui(value)

    @model_validator(mode="after")
    def _identified(self) -> DeviceIn:
        if self.id is None:
            if self.dev_eui is not None:
                self.id = f"eui-{self.dev_eui}"
            elif self.external_id is not None and re.match(DEVICE_ID_PATTERN, self.external_id):
                self.id = self.external_id
            elif self.external_id is not None:
                raise ValueError(
                    f"id: required, external_id {self.external_id!r} is not a valid device id"
                )
            else:
                raise ValueError("id: required, or a dev_eui or external_id to make it from")
        if self.domain is None and self.profile is None:
            raise ValueError("domain: required unless a profile is given")
        # A device's id is its MQTT username and client id: it must not be one of the broker's
        # service identities (the gateway's, the admin's), which it would replace.
        if reason := reserved_reason(self.id):
            raise ValueError(f"id: {reason}")
        return self

    @property
    def device_id(self) -> str:
        """`id`, always set once validated (given, or made from dev_eui or external_id)."""
        assert self.id is not None
        return self.id


class Link(BaseModel):
    """A device's radio link as of its newest uplink (network-server devices)."""

    last_uplink_at: datetime
    rssi: float | None
    snr: float | None
    gateways: int | None
    f_cnt: int | None
    codec: str | None
    codec_version: int | None


class Device(BaseModel):
    id: str
    domain: Domain
    name: str | None
    location: Location | None
    metadata: dict[str, Any]
    created_at: datetime
    topic: str
    dev_eui: str | None = None
    external_id: str | None = None
    profile: str | None = None
    link: Link | None = Field(default=None, description="From the newest uplink; null if none.")


class DeviceModel(BaseModel):
    """Where a device's model stands: "learning" while any part of it warms up (it raises no
    alert of that part: in the day types and hours it has not seen on enough days, or of a
    level change before the level watch has learnt its spread), "calibrated" after; "new"
    before its first checkpoint."""

    device_id: str
    state: Literal["new", "learning", "calibrated"]
    learning_until: datetime | None = Field(
        default=None,
        description="Roughly when the band's warm-up (every day type and hour) ends, if the "
        "device goes on reporting.",
    )
    warming: dict[str, datetime] = Field(
        default_factory=dict,
        description='What still warms up and roughly until when: "band" (day types and hours), '
        '"schedule" (out-of-hours alerts), "level_watch" (level shifts and drifts).',
    )


class Uplink(BaseModel):
    """One stored uplink of a device (its link health history)."""

    ts: datetime
    source: str
    f_port: int | None
    f_cnt: int | None
    codec: str | None
    codec_version: int | None
    rssi: float | None
    snr: float | None
    gateways: int | None
    received_at: datetime


class IngestToken(BaseModel):
    device_id: str
    created_at: datetime
    token: str = Field(
        description="shown once: sent as `Authorization: Bearer <token>` to "
        "POST /v1/ingest/devices/{device_id}; a new token revokes the previous ones"
    )


class MqttCredentials(BaseModel):
    host: str
    # Plain MQTT: only reachable on the broker's own machine unless the town opened it.
    port: int
    # MQTT over TLS, verified with `ca_certificate` (PEM): what a device on the network uses.
    tls_port: int | None = None
    ca_certificate: str | None = None
    username: str
    password: str
    # The only MQTT client id the broker accepts these credentials with: the device's id.
    client_id: str
    topic: str
    qos: int = 1


class DeviceCreated(BaseModel):
    device: Device
    # None for a device with a DevEUI: its network server forwards its uplinks, it never
    # connects to the broker.
    mqtt: MqttCredentials | None


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
