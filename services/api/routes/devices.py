"""Device registry: registration issues MQTT credentials once; deletion revokes them."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from services.api import repository as repo
from services.api.buckets import BadBucket, parse_bucket
from services.api.bulk import BulkBodyError, ParsedRow, mark_duplicates, parse_csv, parse_json
from services.api.schemas import (
    BucketReading,
    BulkResult,
    BulkRow,
    Device,
    DeviceCreated,
    DeviceIn,
    Erasure,
    Location,
    MqttCredentials,
    Page,
    RawReading,
    Readings,
)
from services.api.settings import ApiSettings
from shared import audit, erasure
from shared.auth import new_device_password
from shared.http import Admin, Viewer, time_window
from shared.mqtt_admin import DeviceIdentity, DynSecClient, DynSecError
from shared.topics import Domain, mqtt_topic

router = APIRouter(prefix="/v1/devices", tags=["devices"])


def _device(row: dict[str, Any]) -> Device:
    location = Location(lat=row["lat"], lon=row["lon"]) if row["lat"] is not None else None
    return Device(
        id=row["id"],
        domain=Domain(row["domain"]),
        name=row["name"],
        location=location,
        metadata=row["metadata"],
        created_at=row["created_at"],
        topic=mqtt_topic(Domain(row["domain"]), row["id"]),
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
        topic=device.topic,
    )


def _dynsec(request: Request) -> DynSecClient:
    client: DynSecClient = request.app.state.dynsec
    return client


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DeviceCreated)
async def register_device(body: DeviceIn, request: Request, _: Admin) -> DeviceCreated:
    """Register a device; its MQTT password is in this response only."""
    request.state.audit_target = body.id
    password = new_device_password()
    async with request.app.state.pool.connection() as conn, conn.transaction():
        row = await repo.insert_device(conn, device=_device_values(body))
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"device {body.id!r} exists")
        device = _device(row)
        # Inside the transaction: if the broker refuses, the device is not registered either.
        await _provision(request, device, password)
    return DeviceCreated(
        device=device, mqtt=_credentials(request.app.state.settings, device, password)
    )


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
            "example": "id,domain,name,lat,lon\nbin-001,waste,Market square,48.85,2.35\n",
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
async def register_devices(request: Request, _: Admin) -> BulkResult:
    """Register many devices (JSON list or CSV); each row's outcome, credentials shown once."""
    settings: ApiSettings = request.app.state.settings
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
    todo = {p.device.id: (i, p) for i, p in enumerate(parsed) if p.device is not None}
    ca = _ca_certificate(settings)
    async with request.app.state.pool.connection() as conn, conn.transaction():
        known = await repo.lock_devices(conn, list(todo))
        fresh: list[tuple[int, ParsedRow]] = []
        for device_id, (i, p) in todo.items():
            assert p.device is not None
            had = known.get(device_id)
            if had is None or had["deleted_at"] is not None:
                fresh.append((i, p))
            elif had["domain"] == p.device.domain.value:
                results[i] = BulkRow(row=i, id=device_id, status="exists")
            else:
                results[i] = BulkRow(
                    row=i,
                    id=device_id,
                    status="error",
                    error=f"already registered with domain {had['domain']!r}",
                )
        rows = await repo.insert_devices(conn, [_row_values(p) for _, p in fresh])
        inserted = {row["id"]: _device(row) for row in rows}
        passwords = {device_id: new_device_password() for device_id in inserted}
        refused = await _provision_many(
            request, inserted, passwords=passwords, batch=settings.bulk_broker_batch
        )
        await repo.undo_insert_devices(
            conn,
            new=[d for d in refused if known.get(d) is None],
            revived={d: known[d]["deleted_at"] for d in refused if d in known},
        )
        for i, p in fresh:
            assert p.device is not None
            device_id = p.device.id
            if device_id in refused:
                reason = f"MQTT broker refused: {refused[device_id]}"
                results[i] = BulkRow(row=i, id=device_id, status="error", error=reason)
            elif device_id in inserted:
                device = inserted[device_id]
                mqtt = _credentials(settings, device, passwords[device_id], ca=ca)
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


def _row_values(p: ParsedRow) -> dict[str, Any]:
    assert p.device is not None
    return _device_values(p.device)


def _device_values(body: DeviceIn) -> dict[str, Any]:
    """A registration's row in the devices table."""
    return {
        "id": body.id,
        "domain": body.domain.value,
        "name": body.name,
        "lat": body.location.lat if body.location else None,
        "lon": body.location.lon if body.location else None,
        "metadata": body.metadata,
    }


async def _provision_many(
    request: Request, devices: dict[str, Device], *, passwords: dict[str, str], batch: int
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
            refused |= await asyncio.to_thread(_dynsec(request).add_devices, chunk)
        except DynSecError as exc:
            # The broker did not answer: these rows and the rest are not registered. Those it
            # may still create are harmless: a client whose device row does not exist is
            # refused by the gateway, and a later registration replaces it.
            refused |= {d.device_id: str(exc) for d in identities[start:]}
            break
    return refused


async def _provision(request: Request, device: Device, password: str) -> None:
    try:
        await asyncio.to_thread(
            _dynsec(request).add_device, device_id=device.id, topic=device.topic, password=password
        )
    except DynSecError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"MQTT broker refused: {exc}"
        ) from exc


@router.post("/{device_id}/credentials", response_model=DeviceCreated)
async def rotate_credentials(device_id: str, request: Request, _: Admin) -> DeviceCreated:
    """Issue a new MQTT password (the old one stops working at once)."""
    async with request.app.state.pool.connection() as conn:
        row = await repo.get_device(conn, device_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
    device = _device(row)
    password = new_device_password()
    # add_device recreates client and role: also repairs a device the broker lost.
    await _provision(request, device, password)
    return DeviceCreated(
        device=device, mqtt=_credentials(request.app.state.settings, device, password)
    )


@router.get("", response_model=Page[Device])
async def list_devices(
    request: Request,
    _: Viewer,
    domain: Domain | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[Device]:
    """Registered devices, by id."""
    async with request.app.state.pool.connection() as conn:
        rows, total = await repo.list_devices(
            conn, domain=domain.value if domain else None, limit=limit, offset=offset
        )
    return Page[Device](items=[_device(r) for r in rows], total=total)


@router.get("/{device_id}", response_model=Device)
async def get_device(device_id: str, request: Request, _: Viewer) -> Device:
    """One device."""
    async with request.app.state.pool.connection() as conn:
        row = await repo.get_device(conn, device_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
    return _device(row)


@router.delete(
    "/{device_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={200: {"model": Erasure, "description": "Erased (erase=true)"}},
)
async def delete_device(
    device_id: str,
    request: Request,
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
    async with request.app.state.pool.connection() as conn, conn.transaction():
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
        elif not await repo.delete_device(conn, device_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such device")
        # In the transaction: if the broker refuses, nothing is deleted either. Removing a
        # device the broker no longer knows (deleted earlier) is not an error.
        try:
            await asyncio.to_thread(_dynsec(request).remove_device, device_id)
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
    request: Request,
    _: Viewer,
    start: datetime | None = None,
    end: datetime | None = None,
    metric: str | None = None,
    bucket: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Readings:
    """Raw readings in [start, end), or avg/min/max/count per bucket (15m, 1h, 1d...)."""
    settings: ApiSettings = request.app.state.settings
    start, end = time_window(start, end, default_span=timedelta(days=1))
    async with request.app.state.pool.connection() as conn:
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
