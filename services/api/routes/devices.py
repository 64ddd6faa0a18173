"""Device registry: registration issues MQTT credentials once; deletion revokes them.

A device named by its DevEUI reaches TownPulse through its network server, never through the
broker: it gets no MQTT credentials. A device pushing over HTTP gets an ingest token instead.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from psycopg import AsyncConnection

from services.api.adapters import repository as repo
from services.api.buckets import BadBucket, parse_bucket
from services.api.bulk import BulkBodyError, mark_duplicates, parse_csv, parse_json
from services.api.deps import AppDynSec, Settings
from services.api.schemas import (
    BucketReading,
    BulkResult,
    BulkRow,
    Device,
    DeviceCreated,
    DeviceIn,
    DeviceModel,
    DevicePatch,
    Erasure,
    IngestToken,
    Link,
    Location,
    MqttCredentials,
    Page,
    RawReading,
    Readings,
    Uplink,
)
from services.api.settings import ApiSettings
from shared import audit, erasure
from shared.auth import hash_key, new_device_password
from shared.http import Admin, AppPool, Viewer, time_window
from shared.mqtt_admin import (
    DeviceIdentity,
    DynSecClient,
    DynSecError,
    client_id_of,
    reserved_reason,
)
from shared.topics import Domain, mqtt_topic

router = APIRouter(prefix="/v1/devices", tags=["devices"])


# An HTTP push token: `tpi_<id>_<secret>`, only SHA-256 of the whole token stored, as API keys
# (shared.auth): 192 random bits need no slow hash, the id finds the row. Its prefix differs
# from an API key's, so neither is ever taken for the other.
INGEST_TOKEN_PREFIX = "tpi"  # noqa: S105 -- a prefix, not a secret


def new_ingest_token() -> tuple[str, str, bytes]:
    """(token id, token, hash of the token)."""
    token_id = secrets.token_hex(6)
    token = f"{INGEST_TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(24)}"
    return token_id, token, hash_key(token)


def _device(row: dict[str, Any]) -> Device:
    location = Location(lat=row["lat"], lon=row["lon"]) if row["lat"] is not None else None
    link = None
    if row.get("link_last_uplink_at") is not None:
        link = Link(**{f: row[f"link_{f}"] for f in Link.model_fields})
    return Device(
        id=row["id"],
        domain=Domain(row["domain"]),
        name=row["name"],
        location=location,
        metadata=row["metadata"],
        created_at=row["created_at"],
        topic=mqtt_topic(Domain(row["domain"]), row["id"]),
        dev_eui=row["dev_eui"],
        external_id=row["external_id"],
        profile=row["profile"],
        link=link,
    )


def _ca_certificate(settings: ApiSettings) -> str | None:
    # Read per registration: a town that replaces the CA file needs no restart.
    ca = settings.mqtt_ca_file
    return ca.read_text() if ca is not None and ca.is_file() else None


def _credentials(
    settings: ApiSettings, device: Device, password: str, *, ca: str | None = None
) -> MqttCredentials:
    return MqttCredentials(
        host=settings.mqtt_public_host or settings.mqtt_host,
        port=settings.mqtt_public_port or settings.mqtt_port,
        tls_port=settings.mqtt_public_tls_port or settings.mqtt_tls_port,
        ca_certificate=ca if ca is not None else _ca_certificate(settings),
        username=device.id,
        password=password,
        client_id=client_id_of(device.id),
        topic=device.topic,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceCreated,
    responses={409: {"description": "The id, DevEUI or external id is registered already"}},
)
async def register_device(
    body: DeviceIn,
    request: Request,
    pool: AppPool,
    settings: Settings,
    dynsec: AppDynSec,
    _: Admin,
) -> DeviceCreated:
    """Register a device; its MQTT password (none with a DevEUI) is in this response only."""
    device_id = body.device_id
    request.state.audit_target = device_id
    password = new_device_password()
    async with pool.connection() as conn, conn.transaction():
        domains = await repo.profile_domains(conn, [body.profile] if body.profile else [])
        try:
            domain = _domain(body, domains)
        except NoDomain as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from exc
        taken = await repo.names_taken(conn, **_names([body]))
        for name in _names_of(body):
            # Taken by a device of this id: the insert below says it exists.
            if taken.get(name, device_id) != device_id:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    detail=f"{name[0]} {name[1]!r} is registered to device {taken[name]!r}",
                )
        row = await repo.insert_device(conn, device=_device_values(body, domain))
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"device {device_id!r} exists")
        device = _device(row)
        if body.dev_eui is not None:
            return DeviceCreated(device=device, mqtt=None)
        # Inside the transaction: if the broker refuses, the device is not registered either.
        await _provision(dynsec, device, password)
    return DeviceCreated(device=device, mqtt=_credentials(settings, device, password))


def _names_of(body: DeviceIn) -> list[tuple[str, str]]:
    """What else than its id names a device: ("dev_eui", ...), ("external_id", ...)."""
    return [(f, v) for f in ("dev_eui", "external_id") if (v := getattr(body, f)) is not None]


def _names(bodies: list[DeviceIn]) -> dict[str, list[str]]:
    return {
        "dev_euis": [b.dev_eui for b in bodies if b.dev_eui is not None],
        "external_ids": [b.external_id for b in bodies if b.external_id is not None],
    }


class NoDomain(ValueError):
    """A registration's profile does not exist, or is for another domain than it says."""


def _domain(body: DeviceIn, profile_domains: dict[str, str]) -> Domain:
    """The device's domain: given, or its profile's (`profile_domains`: name -> domain)."""
    if body.profile is None:
        assert body.domain is not None  # DeviceIn needs one or the other
        return body.domain
    of_profile = profile_domains.get(body.profile)
    if of_profile is None:
        raise NoDomain(f"unknown profile {body.profile!r}")
    if body.domain is not None and body.domain.value != of_profile:
        raise NoDomain(
            f"profile {body.profile!r} is for domain {of_profile!r}, not {body.domain.value!r}"
        )
    return Domain(of_profile)


_BULK_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/DeviceIn"},
                "minItems": 1,
            }
        },
        "text/csv": {
            "schema": {"type": "string"},
            "example": "id,domain,name,lat,lon,dev_eui,profile\n"
            "bin-001,waste,Market square,48.85,2.35,,\n"
            ",,Rue Haute,48.86,2.35,24e124126b316584,milesight-iot-em310-udl\n",
        },
    },
}


@router.post(
    "/bulk",
    response_model=BulkResult,
    openapi_extra={"requestBody": _BULK_BODY},
    responses={
        413: {"description": "Body over the size limit"},
        415: {"description": "Neither JSON nor CSV"},
        422: {"description": "Malformed body, no rows or too many rows"},
    },
)
async def register_devices(
    request: Request, pool: AppPool, settings: Settings, dynsec: AppDynSec, _: Admin
) -> BulkResult:
    """Register many devices (JSON list or CSV); each row's outcome, credentials shown once."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    try:
        if media == "application/json":
            parsed = parse_json(body, max_rows=settings.bulk_max_rows)
        elif media in ("text/csv", "application/csv"):
            parsed = parse_csv(body, max_rows=settings.bulk_max_rows)
        else:
            raise HTTPException(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                detail="send application/json (a list of devices) or text/csv",
            )
    except BulkBodyError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from exc
    parsed = mark_duplicates(parsed)
    results: list[BulkRow | None] = [
        BulkRow(row=i, id=p.id, status="error", error=p.error) if p.error else None
        for i, p in enumerate(parsed)
    ]
    valid = [(i, p.device) for i, p in enumerate(parsed) if p.device is not None]
    ca = _ca_certificate(settings)
    async with pool.connection() as conn, conn.transaction():
        todo = await _bulk_todo(conn, valid, results)
        fresh: list[tuple[int, DeviceIn, Domain]] = []
        for device_id, (i, row_in, domain) in todo.rows.items():
            error = _bulk_exists(row_in, domain, todo.had.get(device_id), todo.taken)
            if error == "exists":
                results[i] = BulkRow(row=i, id=device_id, status="exists")
            elif error is not None:
                results[i] = BulkRow(row=i, id=device_id, status="error", error=error)
            else:
                fresh.append((i, row_in, domain))
        rows = await repo.insert_devices(conn, [_device_values(b, d) for _, b, d in fresh])
        inserted = {row["id"]: _device(row) for row in rows}
        # Devices with a DevEUI never connect to the broker: nothing to provision.
        mqtt_ids = {b.device_id for _, b, _ in fresh if b.dev_eui is None}
        passwords = {d: new_device_password() for d in inserted if d in mqtt_ids}
        refused = await _provision_many(
            dynsec,
            {d: device for d, device in inserted.items() if d in passwords},
            passwords=passwords,
            batch=settings.bulk_broker_batch,
        )
        await repo.undo_insert_devices(
            conn,
            new=[d for d in refused if todo.had.get(d) is None],
            revived={d: had["deleted_at"] for d in refused if (had := todo.had.get(d))},
        )
        for i, row_in, _dom in fresh:
            device_id = row_in.device_id
            if device_id in refused:
                reason = f"MQTT broker refused: {refused[device_id]}"
                results[i] = BulkRow(row=i, id=device_id, status="error", error=reason)
            elif device_id in inserted:
                device = inserted[device_id]
                mqtt = (
                    _credentials(settings, device, passwords[device_id], ca=ca)
                    if device_id in passwords
                    else None
                )
                results[i] = BulkRow(
                    row=i, id=device_id, status="created", device=device, mqtt=mqtt
                )
            else:
                # Registered by a concurrent request between our lock and our insert.
                results[i] = BulkRow(
                    row=i, id=device_id, status="error", error="registered concurrently"
                )
    done = [r for r in results if r is not None]
    counts = {s: sum(r.status == s for r in done) for s in ("created", "exists", "error")}
    request.state.audit_target = f"{len(done)} devices"
    # Which devices a key registered stays answerable, as for single registrations.
    request.state.audit_detail = {
        **counts,
        "created_ids": [r.id for r in done if r.status == "created"],
    }
    return BulkResult(
        created=counts["created"], exists=counts["exists"], errors=counts["error"], rows=done
    )


@dataclass
class _Todo:
    """Bulk rows left to register, by device id, with what the database holds about them."""

    rows: dict[str, tuple[int, DeviceIn, Domain]] = field(default_factory=dict)
    # Devices with those ids, live or deleted (locked until commit).
    had: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (name, value) -> id of the live device already named so.
    taken: dict[tuple[str, str], str] = field(default_factory=dict)


async def _bulk_todo(
    conn: AsyncConnection[Any],
    valid: list[tuple[int, DeviceIn]],
    results: list[BulkRow | None],
) -> _Todo:
    """Rows whose profile gives a domain, with the existing devices of those ids (locked) and
    the live devices already named by their DevEUIs or external ids; the others' errors go
    in `results`."""
    profiles = sorted({b.profile for _, b in valid if b.profile is not None})
    domains = await repo.profile_domains(conn, profiles)
    todo = _Todo()
    for i, body in valid:
        try:
            todo.rows[body.device_id] = (i, body, _domain(body, domains))
        except NoDomain as exc:
            results[i] = BulkRow(row=i, id=body.device_id, status="error", error=str(exc))
    bodies = [b for _, b, _ in todo.rows.values()]
    # The names' lock first, then the rows': the order every registration takes them in.
    todo.taken = await repo.names_taken(conn, **_names(bodies))
    todo.had = await repo.lock_devices(conn, list(todo.rows))
    return todo


def _bulk_exists(
    body: DeviceIn,
    domain: Domain,
    had: dict[str, Any] | None,
    taken: dict[tuple[str, str], str],
) -> str | None:
    """None for a device to register; "exists" for one registered as this row says (a re-run);
    else why the row conflicts with a registered device."""
    if had is not None and had["deleted_at"] is None:
        if had["domain"] != domain.value:
            return f"already registered with domain {had['domain']!r}"
        for column in ("dev_eui", "external_id", "profile"):
            given = getattr(body, column)
            if given is not None and had[column] != given:
                if had[column] is None:
                    return f"already registered without a {column}"
                return f"already registered with {column} {had[column]!r}"
        return "exists"
    for name in _names_of(body):
        if name in taken:
            return f"{name[0]} {name[1]!r} is registered to device {taken[name]!r}"
    return None


def _device_values(body: DeviceIn, domain: Domain) -> dict[str, Any]:
    """A registration's row in the devices table."""
    return {
        "id": body.device_id,
        "domain": domain.value,
        "name": body.name,
        "lat": body.location.lat if body.location else None,
        "lon": body.location.lon if body.location else None,
        "metadata": body.metadata,
        "dev_eui": body.dev_eui,
        "external_id": body.external_id,
        "profile": body.profile,
    }


async def _provision_many(
    dynsec: DynSecClient, devices: dict[str, Device], *, passwords: dict[str, str], batch: int
) -> dict[str, str]:
    """Provision in command messages of `batch` devices; the refused ones with a reason."""
    identities = [
        DeviceIdentity(device_id=d.id, topic=d.topic, password=passwords[d.id])
        for d in devices.values()
    ]
    refused: dict[str, str] = {}
    for start in range(0, len(identities), batch):
        chunk = identities[start : start + batch]
        try:
            refused |= await asyncio.to_thread(dynsec.add_devices, chunk)
        except DynSecError as exc:
            # The broker did not answer: these rows and the rest are not registered. Those it
            # may still create are harmless: a client whose device row does not exist is
            # refused by the gateway, and a later registration replaces it.
            refused |= {d.device_id: str(exc) for d in identities[start:]}
            break
    return refused


async def _provision(dynsec: DynSecClient, device: Device, password: str) -> None:
    try:
        await asyncio.to_thread(
            dynsec.add_device, device_id=device.id, topic=device.topic, password=password
        )
    except DynSecError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"MQTT broker refused: {exc}"
        ) from exc


@router.post("/{device_id}/credentials", response_model=DeviceCreated)
async def rotate_credentials(
    device_id: str, pool: AppPool, settings: Settings, dynsec: AppDynSec, _: Admin
) -> DeviceCreated:
    """Issue a new MQTT password (the old one stops working at once)."""
    async with pool.connection() as conn:
        row = await repo.get_device(conn, device_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
    if row["dev_eui"] is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="a device with a DevEUI has no MQTT credentials: its network server "
            "forwards its uplinks",
        )
    if reason := reserved_reason(device_id):
        # Registered by a version that did not reserve the name: new credentials would replace
        # the service identity of that name.
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail=f"{reason}: register the device again under another id",
        )
    device = _device(row)
    password = new_device_password()
    # add_device recreates client and role: also repairs a device the broker lost.
    await _provision(dynsec, device, password)
    return DeviceCreated(device=device, mqtt=_credentials(settings, device, password))


@router.get("", response_model=Page[Device])
async def list_devices(
    pool: AppPool,
    _: Viewer,
    domain: Domain | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[Device]:
    """Registered devices, by id."""
    async with pool.connection() as conn:
        rows, total = await repo.list_devices(
            conn, domain=domain.value if domain else None, limit=limit, offset=offset
        )
    return Page[Device](items=[_device(r) for r in rows], total=total)


@router.get("/{device_id}", response_model=Device)
async def get_device(device_id: str, pool: AppPool, _: Viewer) -> Device:
    """One device, with its radio link as of its newest uplink."""
    async with pool.connection() as conn:
        row = await repo.get_device(conn, device_id, link=True)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
    return _device(row)


@router.get("/{device_id}/model", response_model=DeviceModel)
async def device_model(device_id: str, pool: AppPool, _: Viewer) -> DeviceModel:
    """Whether the device's model is still learning (no alert where it has not seen enough)."""
    async with pool.connection() as conn:
        if await repo.get_device(conn, device_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
        row = await repo.model_state(conn, device_id=device_id)
    until, warming = row["learning_until"], row["warming"]
    if not row["saved"]:
        return DeviceModel(device_id=device_id, state="new")
    if until is None and not warming:
        return DeviceModel(device_id=device_id, state="calibrated")
    return DeviceModel(device_id=device_id, state="learning", learning_until=until, warming=warming)


@router.get("/{device_id}/uplinks", response_model=list[Uplink])
async def device_uplinks(
    device_id: str,
    pool: AppPool,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Uplink]:
    """Its stored uplinks, newest first: frame counter, codec version, RSSI, SNR, gateways."""
    async with pool.connection() as conn:
        if await repo.get_device(conn, device_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
        rows = await repo.uplinks(conn, device_id=device_id, limit=limit)
    return [Uplink(**r) for r in rows]


@router.post(
    "/{device_id}/ingest-token", status_code=status.HTTP_201_CREATED, response_model=IngestToken
)
async def create_ingest_token(
    device_id: str, request: Request, pool: AppPool, _: Admin
) -> IngestToken:
    """A token for HTTP push (shown once); the device's earlier tokens stop working at once."""
    token_id, token, token_hash = new_ingest_token()
    request.state.audit_detail = {"token_id": token_id}
    async with pool.connection() as conn, conn.transaction():
        # Locked: a deletion (which revokes its tokens) cannot slip in before this one is stored.
        had = (await repo.lock_devices(conn, [device_id])).get(device_id)
        if had is None or had["deleted_at"] is not None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
        row = await repo.replace_ingest_token(
            conn, token_id=token_id, device_id=device_id, token_hash=token_hash
        )
    return IngestToken(**row, token=token)


@router.patch("/{device_id}", response_model=Device)
async def change_device(device_id: str, body: DevicePatch, pool: AppPool, _: Admin) -> Device:
    """Change a device's name, location, settings or profile (the gateway follows at once)."""
    changes = body.model_dump(exclude_unset=True)
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = body.name
    if "location" in changes:
        values["lat"] = body.location.lat if body.location else None
        values["lon"] = body.location.lon if body.location else None
    if "metadata" in changes:
        values["metadata"] = body.metadata or {}
    async with pool.connection() as conn, conn.transaction():
        row = await repo.get_device(conn, device_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
        if "profile" in changes:
            if body.profile is not None:
                domains = await repo.profile_domains(conn, [body.profile])
                if body.profile not in domains:
                    raise HTTPException(
                        status.HTTP_422_UNPROCESSABLE_ENTITY,
                        detail=f"unknown profile {body.profile!r}",
                    )
                if domains[body.profile] != row["domain"]:
                    raise HTTPException(
                        status.HTTP_422_UNPROCESSABLE_ENTITY,
                        detail=f"profile {body.profile!r} is for {domains[body.profile]!r},"
                        f" the device is in {row['domain']!r}",
                    )
            values["profile"] = body.profile
        if values:
            await repo.update_device(conn, device_id, values)
        updated = await repo.get_device(conn, device_id, link=True)
    assert updated is not None
    return _device(updated)


@router.delete(
    "/{device_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={200: {"model": Erasure, "description": "Erased (erase=true)"}},
)
async def delete_device(
    device_id: str,
    request: Request,
    pool: AppPool,
    settings: Settings,
    dynsec: AppDynSec,
    principal: Admin,
    erase: Annotated[
        bool, Query(description="Also erase every row that names the device.")
    ] = False,
    aggregates: Annotated[
        bool, Query(description="With erase: erase its aggregates too (else anonymised).")
    ] = False,
) -> Response:
    """Remove a device and revoke its MQTT access; with erase=true, erase all its data."""
    if aggregates and not erase:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, detail="aggregates=true needs erase=true"
        )
    async with pool.connection() as conn, conn.transaction():
        if erase:
            row = await repo.lock_device(conn, device_id)
            if row is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
            result = await erasure.erase_device(
                conn,
                device_id=device_id,
                topic=mqtt_topic(Domain(row["domain"]), device_id),
                erase_aggregates=aggregates,
            )
            await audit.record(
                conn,
                key_id=principal.key_id,
                role=principal.role,
                action="device.erase",
                target=f"device:{device_id}",
                outcome="erased",
                detail=result,
            )
            # Recorded here, in the erasure's transaction: the Gate must not add a second one.
            request.state.audited = True
            # Then every entry naming it, this one included, names its pseudonym instead.
            await erasure.pseudonymise_audit(
                conn, device_id=device_id, key=settings.audit_pseudonym_key_bytes()
            )
        elif not await repo.delete_device(conn, device_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
        # In the transaction: if the broker refuses, nothing is deleted either. Removing a
        # device the broker no longer knows (deleted earlier) is not an error. A device an
        # older version registered under a reserved name has no identity of its own: the one
        # of that name is the service's.
        try:
            if reserved_reason(device_id) is None:
                await asyncio.to_thread(dynsec.remove_device, device_id)
        except DynSecError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"MQTT broker refused: {exc}"
            ) from exc
    if erase:
        body = Erasure(device_id=device_id, **result)
        return Response(body.model_dump_json(), media_type="application/json")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{device_id}/readings", response_model=Readings)
async def readings(
    device_id: str,
    pool: AppPool,
    settings: Settings,
    _: Viewer,
    start: datetime | None = None,
    end: datetime | None = None,
    metric: str | None = None,
    bucket: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Readings:
    """Raw readings in [start, end), or avg/min/max/count per bucket (15m, 1h, 1d...)."""
    start, end = time_window(start, end, default_span=timedelta(days=1))
    async with pool.connection() as conn:
        if await repo.get_device(conn, device_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
        if bucket is None:
            cap = min(limit or settings.max_raw_readings, settings.max_raw_readings)
            rows = await repo.raw_readings(
                conn, device_id=device_id, start=start, end=end, metric=metric, limit=cap + 1
            )
            items: list[RawReading] | list[BucketReading] = [RawReading(**r) for r in rows[:cap]]
        else:
            try:
                parsed = parse_bucket(bucket)
            except BadBucket as exc:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from exc
            cap = min(limit or settings.max_buckets, settings.max_buckets)
            rows = await repo.bucketed_readings(
                conn,
                device_id=device_id,
                start=start,
                end=end,
                metric=metric,
                bucket=parsed,
                limit=cap + 1,
                zone=settings.timezone,
            )
            items = [BucketReading(**r) for r in rows[:cap]]
    return Readings(
        device_id=device_id,
        start=start,
        end=end,
        bucket=bucket,
        items=items,
        truncated=len(rows) > cap,
    )
