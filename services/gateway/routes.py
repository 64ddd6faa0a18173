"""The gateway's HTTP side: what an admin configures (integrations, codecs, profiles), what it
was heard from, and the HTTP ingest that network servers, vendor clouds and NB-IoT devices push
to. Operators reach these through the API (API_URL), which forwards them here unchanged."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.adapters import db
from services.gateway.adapters.db import DbCatalogue, IntegrationRow
from services.gateway.ingest.codec import CodecPool, list_repository_codecs, load_repository_codec
from services.gateway.ingest.dispatch import parse_http_uplink
from services.gateway.ingest.native import DeviceTopic, parse_payload
from services.gateway.ingest.profile import (
    MemoryCounters,
    ProfileError,
    check_against_examples,
    map_fields,
    parse_profile,
)
from services.gateway.ingest.rejection import Reason, Rejection
from services.gateway.integrations import Integrations, check_connection, subscription
from services.gateway.settings import GatewaySettings
from services.gateway.uplinks import DUPLICATES, Duplicate, Undo
from shared.auth import hash_key, key_matches
from shared.http import Admin, Operator, Viewer
from shared.schemas import ReadingBatch
from shared.throttle import FailureThrottle

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")
ingest_router = APIRouter(prefix="/v1/ingest", tags=["ingest"])

ID = r"^[a-z0-9][a-z0-9-]{0,39}$"
NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"


@dataclass
class Ingest:
    """What the routes need of the running gateway."""

    gateway: Any  # services.gateway.app.Gateway (imported there: no cycle)
    integrations: Integrations
    catalogue: DbCatalogue
    codecs: CodecPool
    settings: GatewaySettings
    # Failed push secrets and tokens, per source and per integration or device: the pushes
    # are public routes (no API key), so the Gate's own throttle never sees their failures.
    throttle: FailureThrottle
    # Uplinks answered 503 whose record may still reach Kafka, by dedup key.
    in_flight: dict[str, asyncio.Future[object]] = dataclasses.field(default_factory=dict)


async def _ingest(request: Request) -> Ingest:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request
    # that took a sixth of the gateway's samples while a backfill's uplinks came in.
    ingest: Ingest = request.app.state.ingest
    return ingest


IngestDep = Annotated[Ingest, Depends(_ingest)]


# ---- integrations ------------------------------------------------------------------------------


class IntegrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID)
    kind: Literal["chirpstack", "tts", "mqtt_json"]
    transport: Literal["mqtt", "http"]
    name: str = Field(default="", max_length=200)
    mqtt_host: str | None = Field(default=None, min_length=1, max_length=253, pattern=r"^[^\s/]+$")
    mqtt_port: int | None = Field(default=None, ge=1, le=65535)
    mqtt_tls: bool = False
    mqtt_username: str | None = Field(default=None, max_length=200)
    mqtt_password: str | None = Field(default=None, max_length=500)
    ca_certificate: str | None = Field(default=None, max_length=65536)
    topic: str | None = Field(default=None, min_length=1, max_length=500, pattern=r"^[^\x00]+$")
    application: str | None = Field(default=None, min_length=1, max_length=200)
    profile: str | None = Field(default=None, pattern=NAME)


class IntegrationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    mqtt_host: str | None = Field(default=None, min_length=1, max_length=253, pattern=r"^[^\s/]+$")
    mqtt_port: int | None = Field(default=None, ge=1, le=65535)
    mqtt_tls: bool | None = None
    mqtt_username: str | None = Field(default=None, max_length=200)
    mqtt_password: str | None = Field(default=None, max_length=500)
    ca_certificate: str | None = Field(default=None, max_length=65536)
    topic: str | None = Field(default=None, min_length=1, max_length=500, pattern=r"^[^\x00]+$")
    application: str | None = Field(default=None, min_length=1, max_length=200)
    profile: str | None = Field(default=None, pattern=NAME)
    enabled: bool | None = None


class IntegrationStatus(BaseModel):
    connected: bool = False
    last_uplink_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    uplinks_last_hour: int = 0
    errors_last_hour: int = 0


class Integration(BaseModel):
    id: str
    kind: str
    transport: str
    name: str
    mqtt_host: str | None
    mqtt_port: int | None
    mqtt_tls: bool
    mqtt_username: str | None
    topic: str | None
    application: str | None
    profile: str | None
    enabled: bool
    created_at: datetime
    ingest_path: str | None
    status: IntegrationStatus
    http_secret: str | None = Field(default=None, description="shown once, at creation")


def _ingest_path(row: IntegrationRow) -> str | None:
    if row.transport != "http":
        return None
    # ChirpStack adds `?event=up` (join, status...) to the URL it is given: not part of it.
    return f"/v1/ingest/{row.kind}/{row.id}"


def _integration(
    row: IntegrationRow, state: dict[str, Any] | None, *, live: Integrations
) -> Integration:
    status_ = IntegrationStatus(
        **{k: v for k, v in (state or {}).items() if k != "id" and v is not None}
    )
    if row.transport == "mqtt":
        # This instance's own view is fresher than the last saved one.
        status_.connected = live.connected(row.id)
    return Integration(
        id=row.id,
        kind=row.kind,
        transport=row.transport,
        name=row.name,
        mqtt_host=row.mqtt_host,
        mqtt_port=row.mqtt_port,
        mqtt_tls=row.mqtt_tls,
        mqtt_username=row.mqtt_username,
        topic=row.topic,
        application=row.application,
        profile=row.profile,
        enabled=row.enabled,
        created_at=row.created_at,
        ingest_path=_ingest_path(row),
        status=status_,
    )


async def _check_integration(ingest: Ingest, row: IntegrationRow) -> None:
    """What the table's constraints cannot say, as a reason a person can act on."""
    if row.transport == "mqtt" and not row.mqtt_host:
        raise HTTPException(422, detail="an MQTT integration needs mqtt_host")
    if row.kind == "mqtt_json" and (row.transport != "mqtt" or not row.profile):
        raise HTTPException(422, detail="mqtt_json integrations need transport mqtt and a profile")
    if row.transport == "mqtt":
        try:
            subscription(row)
        except ValueError as exc:
            raise HTTPException(422, detail=str(exc)) from exc
    if row.profile and await ingest.catalogue.profile(row.profile) is None:
        raise HTTPException(422, detail=f"unknown profile {row.profile!r}")
    if row.ca_certificate and "-----BEGIN CERTIFICATE-----" not in row.ca_certificate:
        raise HTTPException(422, detail="ca_certificate must be a PEM certificate")


@router.get("/integrations", response_model=list[Integration], tags=["integrations"])
async def list_integrations(ingest: IngestDep, _: Viewer) -> list[Integration]:
    """Every integration with its status (connected, last uplink, uplinks and errors per hour)."""
    pool = ingest.gateway.pool
    rows, states = await db.integrations(pool), await db.statuses(pool)
    return [_integration(r, states.get(r.id), live=ingest.integrations) for r in rows]


@router.post("/integrations", status_code=201, response_model=Integration, tags=["integrations"])
async def add_integration(body: IntegrationIn, ingest: IngestDep, _: Admin) -> Integration:
    """Add a network server (ChirpStack, The Things Stack) or a broker of devices' own JSON.
    For HTTP, the secret the server must send (`Authorization: Bearer ...`) is shown once."""
    values = body.model_dump()
    secret: str | None = None
    if body.transport == "http":
        secret = secrets.token_urlsafe(32)
        values["http_secret_hash"] = hash_key(secret)
    candidate = IntegrationRow(
        **{"http_secret_hash": None, **values, "enabled": True, "created_at": datetime.now(UTC)}
    )
    await _check_integration(ingest, candidate)
    row = await db.insert_integration(ingest.gateway.pool, values)
    if row is None:
        raise HTTPException(409, detail=f"integration {body.id!r} exists")
    out = _integration(row, None, live=ingest.integrations)
    out.http_secret = secret
    return out


@router.patch("/integrations/{integration_id}", response_model=Integration, tags=["integrations"])
async def change_integration(
    integration_id: str, body: IntegrationPatch, ingest: IngestDep, _: Admin
) -> Integration:
    """Change an integration; a changed connection setting reconnects it."""
    pool = ingest.gateway.pool
    row = await db.integration(pool, integration_id)
    if row is None:
        raise HTTPException(404, detail="no such integration")
    values = body.model_dump(exclude_unset=True)
    await _check_integration(ingest, dataclasses.replace(row, **values))
    updated = await db.update_integration(pool, integration_id, values) if values else row
    if updated is None:
        raise HTTPException(404, detail="no such integration")
    return _integration(updated, None, live=ingest.integrations)


@router.delete("/integrations/{integration_id}", status_code=204, tags=["integrations"])
async def remove_integration(integration_id: str, ingest: IngestDep, _: Admin) -> Response:
    """Remove an integration: its broker is disconnected, its HTTP secret stops working."""
    if not await db.delete_integration(ingest.gateway.pool, integration_id):
        raise HTTPException(404, detail="no such integration")
    return Response(status_code=204)


class ConnectionCheck(BaseModel):
    ok: bool
    detail: str


@router.post(
    "/integrations/{integration_id}/test", response_model=ConnectionCheck, tags=["integrations"]
)
async def test_integration(integration_id: str, ingest: IngestDep, _: Admin) -> ConnectionCheck:
    """Connect and subscribe to the network server's broker with the stored settings."""
    row = await db.integration(ingest.gateway.pool, integration_id)
    if row is None:
        raise HTTPException(404, detail="no such integration")
    ok, detail = await check_connection(row)
    if row.transport == "http":
        detail = f"{detail}: give it API_URL{_ingest_path(row)}"
    return ConnectionCheck(ok=ok, detail=detail)


class HeardDevice(BaseModel):
    device_key: str
    source: str
    first_heard: datetime
    last_heard: datetime
    uplinks: int
    last_f_port: int | None
    last_payload: str


@router.get("/heard-devices", response_model=list[HeardDevice], tags=["integrations"])
async def heard_devices(
    ingest: IngestDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[HeardDevice]:
    """Devices whose uplinks arrived but that nobody registered, newest first."""
    return [HeardDevice(**r) for r in await db.heard_devices(ingest.gateway.pool, limit=limit)]


# ---- codecs ------------------------------------------------------------------------------------


class CodecIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    script: str = Field(min_length=1, max_length=256 * 1024)
    examples: list[dict[str, Any]] = Field(default_factory=list, max_length=100)


class CodecImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(pattern=r"^[a-z0-9-]+/[a-z0-9.-]+$", max_length=200)


class Codec(BaseModel):
    name: str
    version: int
    sha256: str
    source: str
    created_at: datetime
    examples: int


def _compile(ingest: Ingest, script: str) -> None:
    """A codec that does not load is refused at upload, not at its first uplink."""
    try:
        ingest.codecs.check(script)
    except Rejection as exc:
        raise HTTPException(422, detail=f"{exc.reason.value}: {exc.detail}") from exc


@router.get("/codecs", response_model=list[Codec], tags=["codecs"])
async def list_codecs(ingest: IngestDep, _: Viewer) -> list[Codec]:
    """Every version of every codec, newest first."""
    return [Codec(**r) for r in await db.codecs(ingest.gateway.pool)]


@router.post("/codecs", status_code=201, response_model=Codec, tags=["codecs"])
async def upload_codec(body: CodecIn, ingest: IngestDep, _: Admin) -> Codec:
    """Upload a TTN-format codec (`decodeUplink(input)`): a new version of that name."""
    _compile(ingest, body.script)
    row = await db.add_codec(
        ingest.gateway.pool,
        name=body.name,
        script=body.script,
        examples=body.examples,
        source="upload",
    )
    ingest.catalogue.forget()
    return Codec(**{k: v for k, v in row.items() if k != "created"})


@router.get("/codecs/repository", response_model=list[str], tags=["codecs"])
async def repository_codecs(ingest: IngestDep, _: Viewer) -> list[str]:
    """Codecs in the local copy of the TTN Device Repository that can be imported by path."""
    root = ingest.settings.device_repository
    return list_repository_codecs(root) if root is not None and root.is_dir() else []


@router.post("/codecs/import", status_code=201, response_model=Codec, tags=["codecs"])
async def import_codec(body: CodecImport, ingest: IngestDep, _: Admin) -> Codec:
    """Import a codec, with its official examples, from the local Device Repository copy."""
    root = ingest.settings.device_repository
    if root is None or not root.is_dir():
        raise HTTPException(422, detail="no local Device Repository (TOWNPULSE_DEVICE_REPOSITORY)")
    try:
        found = load_repository_codec(root, body.path)
    except (OSError, ValueError, KeyError) as exc:
        raise HTTPException(422, detail=f"cannot import {body.path!r}: {exc}") from exc
    _compile(ingest, found.script)
    row = await db.add_codec(
        ingest.gateway.pool,
        name=found.name,
        script=found.script,
        examples=[e.to_doc() for e in found.examples],
        source=f"repository:{body.path}",
    )
    ingest.catalogue.forget()
    return Codec(**{k: v for k, v in row.items() if k != "created"})


@router.delete("/codecs/{name}", status_code=204, tags=["codecs"])
async def remove_codec(name: str, ingest: IngestDep, _: Admin) -> Response:
    """Remove every version of a codec no profile names any more."""
    deleted, users = await db.delete_codec(ingest.gateway.pool, name)
    if users:
        raise HTTPException(409, detail=f"profiles still use it: {', '.join(users[:20])}")
    if not deleted:
        raise HTTPException(404, detail="no such codec")
    ingest.catalogue.forget()
    return Response(status_code=204)


# ---- profiles ----------------------------------------------------------------------------------


class ProfileOut(BaseModel):
    name: str
    domain: str
    codec: str | None
    definition: dict[str, Any]
    shipped: bool


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any]


@router.get("/profiles", response_model=list[ProfileOut], tags=["profiles"])
async def list_profiles(ingest: IngestDep, _: Viewer) -> list[ProfileOut]:
    """Every device profile: which codec, which metrics."""
    return [ProfileOut(**r) for r in await db.profiles(ingest.gateway.pool)]


@router.get("/profiles/{name}", response_model=ProfileOut, tags=["profiles"])
async def get_profile(name: str, ingest: IngestDep, _: Viewer) -> ProfileOut:
    row = await db.profile_row(ingest.gateway.pool, name)
    if row is None:
        raise HTTPException(404, detail="no such profile")
    return ProfileOut(**row)


@router.put("/profiles/{name}", response_model=ProfileOut, tags=["profiles"])
async def save_profile(
    name: str, body: ProfileIn, ingest: IngestDep, response: Response, _: Admin
) -> ProfileOut:
    """Create or replace a profile. Refused (422, with the reason) when it maps to an unknown
    metric or reads a field its codec's examples never output."""
    definition = {**body.definition, "name": name}
    try:
        profile = parse_profile(definition)
        if profile.codec:
            examples = await db.codec_examples(ingest.gateway.pool, profile.codec)
            codec = await ingest.catalogue.codec(profile.codec)
            if examples is None or codec is None:
                raise ProfileError(f"no codec {profile.codec!r}: upload or import it first")
            if examples or profile.examples:
                # The profile's own example frames are decoded by the codec itself.
                check_against_examples(
                    profile,
                    [e.get("output", {}) for e in examples],
                    sandbox=ingest.codecs.fresh(codec.script),
                )
    except ProfileError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    created = await db.save_profile(ingest.gateway.pool, profile, definition, shipped=False)
    ingest.catalogue.forget()
    response.status_code = 201 if created else 200
    row = await db.profile_row(ingest.gateway.pool, name)
    assert row is not None
    return ProfileOut(**row)


@router.delete("/profiles/{name}", status_code=204, tags=["profiles"])
async def remove_profile(name: str, ingest: IngestDep, _: Admin) -> Response:
    """Remove a profile no device or integration uses (a shipped one returns at the gateway's
    next start)."""
    deleted, users = await db.delete_profile(ingest.gateway.pool, name)
    if users:
        raise HTTPException(409, detail=f"{users} devices or integrations still use it")
    if not deleted:
        raise HTTPException(404, detail="no such profile")
    ingest.catalogue.forget()
    return Response(status_code=204)


class TryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: str = Field(max_length=4096, description="the uplink's bytes, hex or base64")
    f_port: int = Field(ge=0, le=255)
    metadata: dict[str, Any] = Field(default_factory=dict, description="per-device settings")


class TriedReading(BaseModel):
    metric: str
    value: float
    unit: str | None


class TryOut(BaseModel):
    codec: dict[str, Any] | None
    decoded: dict[str, Any] | None
    warnings: list[str]
    readings: list[TriedReading]
    error: dict[str, str] | None


def _payload_bytes(text: str) -> bytes:
    cleaned = re.sub(r"[\s:]", "", text)
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})*", cleaned):
        return bytes.fromhex(cleaned)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, detail="payload is neither hex nor base64") from None


@router.post("/profiles/{name}/try", response_model=TryOut, tags=["profiles"])
async def try_profile(name: str, body: TryIn, ingest: IngestDep, _: Operator) -> TryOut:
    """Decode an uplink's bytes with the profile's codec and show the readings it would make.
    Nothing is stored; a counter's interval needs two uplinks, so a first one shows totals."""
    payload = _payload_bytes(body.payload)
    profile = await ingest.catalogue.profile(name)
    if profile is None:
        raise HTTPException(404, detail="no such profile")
    if not profile.codec:
        raise HTTPException(422, detail=f"profile {name!r} names no codec: nothing to decode")
    codec = await ingest.catalogue.codec(profile.codec)
    if codec is None:
        raise HTTPException(422, detail=f"codec {profile.codec!r} is not installed")
    codec_ref = {"name": codec.name, "version": codec.version}
    now = datetime.now(UTC)
    try:
        # Off the event loop: a codec may use its whole time limit.
        decoded = await asyncio.to_thread(
            ingest.codecs.fresh(codec.script).decode, payload, f_port=body.f_port, recv_time=now
        )
    except Rejection as exc:
        return TryOut(
            codec=codec_ref,
            decoded=None,
            warnings=[],
            readings=[],
            error={"reason": exc.reason.value, "detail": exc.detail},
        )
    try:
        readings = map_fields(
            profile,
            decoded.data,
            device_id="try",
            ts=now,
            metadata=body.metadata,
            counters=MemoryCounters(),
        )
        error = None
    except Rejection as exc:
        readings, error = [], {"reason": exc.reason.value, "detail": exc.detail}
    return TryOut(
        codec=codec_ref,
        decoded=decoded.data,
        warnings=list(decoded.warnings),
        readings=[TriedReading(metric=r.metric, value=r.value, unit=r.unit) for r in readings],
        error=error,
    )


# ---- HTTP ingest -------------------------------------------------------------------------------


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            detail="missing secret (Authorization: Bearer ...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def _source(request: Request) -> str:
    # The peer, or the client the API's proxy forwarded for (uvicorn trusts X-Forwarded-For
    # from loopback only).
    return request.client.host if request.client else "?"


def _not_throttled(ingest: Ingest, request: Request) -> None:
    """429 for a source past its allowance of failed secrets, before any database look-up."""
    if (wait := ingest.throttle.source_retry_after(_source(request))) is not None:
        raise HTTPException(
            429, detail="too many failed secrets; retry later", headers={"Retry-After": str(wait)}
        )


def _refuse(ingest: Ingest, request: Request, *, key: str, detail: str) -> NoReturn:
    """A wrong secret or token: counted per source and per integration or device, 429 once
    either is past its allowance (a right secret still passes: it is checked first)."""
    wait = ingest.throttle.key_retry_after(key)
    if wait is None:
        ingest.throttle.failed(source=_source(request), key_id=key)
        raise HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})
    raise HTTPException(
        429, detail="too many failed secrets; retry later", headers={"Retry-After": str(wait)}
    )


def _unavailable() -> Response:
    return JSONResponse(
        {"detail": "not stored yet: Kafka is unavailable, retry later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _accepted() -> Response:
    return JSONResponse({"status": "accepted"}, status_code=202)


def _duplicate() -> Response:
    return JSONResponse({"status": "duplicate"}, status_code=200)


async def _send(ingest: Ingest, out: Any) -> asyncio.Future[object] | None:
    """The record handed to the producer (its future), or None if the producer did not take it
    within the push's time."""
    try:
        fut: asyncio.Future[object] = await asyncio.wait_for(
            ingest.gateway.send(out), ingest.settings.ingest_kafka_timeout_s
        )
    except Exception as exc:
        log.warning("HTTP ingest: Kafka did not take the record: %r", exc)
        return None
    return fut


async def _acknowledged(ingest: Ingest, fut: asyncio.Future[object]) -> Response:
    """202 once Kafka has the record; 503 with Retry-After when it does not in time. Shielded:
    the record goes on to Kafka after a 503 (the producer keeps it until its own timeout)."""
    try:
        await asyncio.wait_for(asyncio.shield(fut), ingest.settings.ingest_kafka_timeout_s)
    except Exception as exc:
        log.warning("HTTP ingest: Kafka did not acknowledge the record: %r", exc)
        return _unavailable()
    return _accepted()


async def _produce(ingest: Ingest, out: Any) -> Response:
    fut = await _send(ingest, out)
    return _unavailable() if fut is None else await _acknowledged(ingest, fut)


async def _produce_uplink(ingest: Ingest, batch: ReadingBatch, undo: Undo) -> Response:
    """Like `_produce`, for an uplink the sender will retry after a 503: as its record may still
    reach Kafka after the answer, the retry waits for that record instead of sending a second
    one, and is taken as new only if it failed."""
    fut = await _send(ingest, ingest.gateway.accept(batch))
    if fut is None:
        undo()
        return _unavailable()
    key = undo.uplink.dedup_key
    ingest.in_flight[key] = fut

    def settled(done: asyncio.Future[object]) -> None:
        ingest.in_flight.pop(key, None)
        if done.cancelled() or done.exception() is not None:
            undo()  # never reached Kafka: the sender's retry is taken as new

    fut.add_done_callback(settled)
    return await _acknowledged(ingest, fut)


async def _taken_before(ingest: Ingest, key: str) -> Response | None:
    """A second delivery: 200 if the first is in Kafka, 503 while it is still on its way, None
    when the first failed after all (then this one is taken as new)."""
    fut = ingest.in_flight.get(key)
    if fut is None:
        return _duplicate()
    try:
        await asyncio.wait_for(asyncio.shield(fut), ingest.settings.ingest_kafka_timeout_s)
    except TimeoutError:
        return _unavailable()
    except Exception:
        return None
    return _duplicate()


async def _dead_letter(
    ingest: Ingest, rej: Rejection, *, topic: str, device_id: str | None, body: bytes
) -> Response:
    out = ingest.gateway.reject(
        rej, topic=topic, device_id=device_id, payload=body, received_at=datetime.now(UTC)
    )
    stored = await _produce(ingest, out)
    if stored.status_code != 202:
        return stored
    code = 404 if rej.reason is Reason.UNKNOWN_DEVICE else 422
    return JSONResponse({"detail": f"{rej.reason.value}: {rej.detail}"[:500]}, status_code=code)


async def _network_server(
    kind: str, integration_id: str, request: Request, ingest: Ingest, authorization: str | None
) -> Response:
    _not_throttled(ingest, request)
    token = _bearer(authorization)
    row = ingest.integrations.row(integration_id) or await db.integration(
        ingest.gateway.pool, integration_id
    )
    expected = row.http_secret_hash if row is not None and row.kind == kind else None
    # Compared in constant time, and the same answer for a wrong id as for a wrong secret.
    if expected is None or not key_matches(token, expected):
        _refuse(ingest, request, key=f"integration:{integration_id[:64]}", detail="invalid secret")
    assert row is not None
    if not row.enabled:
        raise HTTPException(409, detail="integration disabled")
    body = await request.body()
    topic = f"http:{kind}/{integration_id}"
    # Twice at most: a retry whose first attempt failed after all is then taken as new.
    for _ in range(2):
        received_at = datetime.now(UTC)
        try:
            uplink = parse_http_uplink(
                kind, body, received_at=received_at, limits=ingest.gateway.limits
            )
            batch, undo = await ingest.gateway.map_uplink_undoable(
                uplink, row=row, received_at=received_at
            )
        except Rejection as rej:
            ingest.integrations.counted(integration_id, ok=False, error=rej.reason.value)
            return await _dead_letter(ingest, rej, topic=topic, device_id=rej.device_id, body=body)
        except Duplicate:
            DUPLICATES.labels(integration_id).inc()
            answer = await _taken_before(ingest, uplink.dedup_key)
            if answer is not None:
                return answer
            continue
        ingest.integrations.counted(integration_id, ok=True)
        return await _produce_uplink(ingest, batch, undo)
    return _unavailable()


@ingest_router.post("/chirpstack/{integration_id}", status_code=202)
async def chirpstack_http(
    integration_id: str,
    request: Request,
    ingest: IngestDep,
    event: Annotated[str, Query(max_length=32)] = "up",
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """ChirpStack v4's HTTP integration (JSON marshaler). Only `up` events carry readings;
    others (join, status, ack, txack, log, location) are acknowledged and ignored."""
    if event != "up":
        _bearer(authorization)
        return Response(status_code=204)
    return await _network_server("chirpstack", integration_id, request, ingest, authorization)


@ingest_router.post("/tts/{integration_id}", status_code=202)
async def tts_http(
    integration_id: str,
    request: Request,
    ingest: IngestDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """The Things Stack v3's webhook (uplink message, JSON)."""
    return await _network_server("tts", integration_id, request, ingest, authorization)


@ingest_router.post("/devices/{device_id}", status_code=202)
async def device_http(
    device_id: str,
    request: Request,
    ingest: IngestDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """A device or a vendor's cloud pushes TownPulse JSON or SenML, as it would over MQTT,
    with the device's ingest token."""
    _not_throttled(ingest, request)
    token = _bearer(authorization)
    hashes = await db.ingest_token_hashes(ingest.gateway.pool, device_id[:64])
    if not any([key_matches(token, h) for h in hashes]):
        _refuse(ingest, request, key=f"device:{device_id[:64]}", detail="invalid token")
    device = await ingest.gateway.registry.device(device_id)
    body = await request.body()
    topic = f"http:devices/{device_id}"
    if device is None:
        raise HTTPException(404, detail="no such device")
    try:
        batch: ReadingBatch = parse_payload(
            DeviceTopic(domain=device.domain, device_id=device.id),
            body,
            received_at=datetime.now(UTC),
            limits=ingest.gateway.limits,
        )
    except Rejection as rej:
        return await _dead_letter(ingest, rej, topic=topic, device_id=device.id, body=body)
    return await _produce(ingest, ingest.gateway.accept(batch))
