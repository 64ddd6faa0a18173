"""Webhook subscriptions (admin only): CRUD, secret rotation, delivery log, redelivery.

A secret is in the response that creates it (creation, rotation) and nowhere else: not in other
responses, not in logs.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel

from services.alerts.adapters import sender
from services.alerts.adapters import webhooks as db
from services.alerts.adapters.secrets import SecretUnavailable
from services.alerts.deps import AppDispatcher, Secrets, Settings
from services.alerts.domain.targets import ForbiddenTarget, check_literal
from services.alerts.domain.webhooks import new_secret
from services.alerts.schemas import (
    AttemptOut,
    DeliveryOut,
    RotateIn,
    RotateOut,
    TestSendOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)
from services.alerts.settings import AlertsSettings
from shared.db import Pool
from shared.http import Admin, AppPool
from shared.inputs import Instant

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _values(body: WebhookPatch, *, only_set: bool) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=only_set, mode="json")
    return {k: v for k, v in values.items() if k in db.PATCHABLE}


def _check_target(settings: AlertsSettings, url: str | None) -> None:
    if url is None:
        return
    try:
        check_literal(urlsplit(url).hostname or "", allowed=settings.webhook_allowed_networks)
    except ForbiddenTarget as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from exc


async def _one(pool: Pool, sub_id: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        row = await db.get_subscription(conn, sub_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such webhook")
    return row


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
async def create_webhook(
    body: WebhookIn,
    request: Request,
    pool: AppPool,
    settings: Settings,
    secrets: Secrets,
    _: Admin,
) -> WebhookCreated:
    """Subscribe a URL; the signing secret is in this response only."""
    _check_target(settings, body.url)
    secret = new_secret()
    values = _values(body, only_set=False)
    request.state.audit_target = sub_id = f"wh_{uuid.uuid4().hex[:16]}"
    async with pool.connection() as conn:
        row = await db.create_subscription(
            conn, {**values, "id": sub_id, "secret": secrets.seal(secret)}
        )
    return WebhookCreated(**row, secret=secret)


@router.get("", response_model=list[WebhookOut])
async def list_webhooks(pool: AppPool, _: Admin) -> list[WebhookOut]:
    """Every subscription (never its secret)."""
    async with pool.connection() as conn:
        return [WebhookOut(**r) for r in await db.list_subscriptions(conn)]


@router.get("/{sub_id}", response_model=WebhookOut)
async def get_webhook(sub_id: str, pool: AppPool, _: Admin) -> WebhookOut:
    """One subscription (never its secret)."""
    return WebhookOut(**await _one(pool, sub_id))


@router.patch("/{sub_id}", response_model=WebhookOut)
async def update_webhook(
    sub_id: str,
    body: WebhookPatch,
    pool: AppPool,
    settings: Settings,
    dispatcher: AppDispatcher,
    _: Admin,
) -> WebhookOut:
    """Change some fields; enabling a subscription again clears why it was disabled."""
    _check_target(settings, body.url)
    values = _values(body, only_set=True)
    if values.get("event_types", []) is None or values.get("url", "") is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail="url/event_types: null")
    if "enabled" in values and values["enabled"] is None:
        del values["enabled"]
    async with pool.connection() as conn:
        row = await db.update_subscription(conn, sub_id, values)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such webhook")
    dispatcher.wake()
    return WebhookOut(**row)


@router.delete("/{sub_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(sub_id: str, pool: AppPool, _: Admin) -> Response:
    """Delete a subscription and its pending deliveries."""
    async with pool.connection() as conn:
        deleted = await db.delete_subscription(conn, sub_id)
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such webhook")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{sub_id}/rotate-secret", response_model=RotateOut)
async def rotate_secret(
    sub_id: str,
    pool: AppPool,
    settings: Settings,
    secrets: Secrets,
    _: Admin,
    body: RotateIn | None = None,
) -> RotateOut:
    """A new secret (in this response only); the old one also signs until the overlap ends."""
    overlap = body.overlap_s if body and body.overlap_s is not None else None
    expires = datetime.now(UTC) + timedelta(
        seconds=settings.webhook_secret_overlap_s if overlap is None else overlap
    )
    secret = new_secret()
    async with pool.connection() as conn:
        rotated = await db.rotate_secret(conn, sub_id, sealed=secrets.seal(secret), expires=expires)
    if not rotated:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such webhook")
    return RotateOut(secret=secret, previous_secret_expires_at=expires)


@router.post("/{sub_id}/test", response_model=TestSendOut)
async def send_test(
    sub_id: str, pool: AppPool, settings: Settings, secrets: Secrets, _: Admin
) -> TestSendOut:
    """Send a signed `webhook.test` event now, once: not stored, not retried, no alert needed."""
    async with pool.connection() as conn:
        row = await db.signing_target(conn, sub_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such webhook")
    try:
        signing = secrets.open(row["secret"])
    except SecretUnavailable as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"the webhook's secret cannot be used: {exc}"
        ) from exc
    msg_id = f"msg_test_{uuid.uuid4().hex}"
    body = json.dumps(
        {
            "type": "webhook.test",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {"subscription_id": sub_id},
        },
        separators=(",", ":"),
    )
    # Same signing, time bound and response cap as real deliveries; no redirects either.
    async with httpx.AsyncClient(follow_redirects=False) as client:
        result = await sender.send(
            client,
            url=row["url"],
            msg_id=msg_id,
            body=body,
            secrets=[signing],
            timeout_s=settings.webhook_timeout_s,
            max_response_bytes=settings.webhook_max_response_bytes,
            # The same target rules as real deliveries, checked at connect time.
            allowed_networks=settings.webhook_allowed_networks,
        )
    code = result.status_code
    return TestSendOut(
        msg_id=msg_id,
        status_code=code,
        latency_ms=round(result.latency_s * 1000, 1),
        error=result.error,
        delivered=code is not None and 200 <= code < 300,
    )


@router.get("/{sub_id}/deliveries", response_model=list[DeliveryOut])
async def list_deliveries(
    sub_id: str,
    pool: AppPool,
    _: Admin,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(pending|delivered|failed)$")
    ] = None,
    alert_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
) -> list[DeliveryOut]:
    """Deliveries, newest first, with every attempt: status code, latency, error, next retry."""
    await _one(pool, sub_id)
    return await _deliveries(pool, sub_id, state=status_, alert_id=alert_id, limit=limit)


async def _deliveries(
    pool: Pool,
    sub_id: str,
    *,
    state: str | None = None,
    alert_id: str | None = None,
    delivery_id: int | None = None,
    limit: int = 1,
) -> list[DeliveryOut]:
    async with pool.connection() as conn:
        rows = await db.deliveries(
            conn, sub_id, state=state, alert_id=alert_id, delivery_id=delivery_id, limit=limit
        )
    return [
        DeliveryOut(
            **{k: v for k, v in r.items() if k != "attempt_log"},
            attempt_log=[AttemptOut(**a) for a in r["attempt_log"]],
        )
        for r in rows
    ]


@router.post("/{sub_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut)
async def redeliver(
    sub_id: str, delivery_id: int, pool: AppPool, dispatcher: AppDispatcher, _: Admin
) -> DeliveryOut:
    """Send a delivery again now (same webhook-id), with a fresh retry schedule."""
    async with pool.connection() as conn:
        requeued = await db.redeliver(conn, sub_id, delivery_id)
    if not requeued:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such delivery (or in flight)")
    dispatcher.wake()
    return (await _deliveries(pool, sub_id, delivery_id=delivery_id))[0]


class BulkRedeliverOut(BaseModel):
    requeued: int


@router.post("/{sub_id}/redeliver-failed", response_model=BulkRedeliverOut)
async def redeliver_failed(
    sub_id: str,
    pool: AppPool,
    dispatcher: AppDispatcher,
    _: Admin,
    since: Annotated[Instant | None, Query(description="only deliveries created since")] = None,
) -> BulkRedeliverOut:
    """Queue every failed delivery again (same webhook-ids), e.g. after a receiver came back;
    re-enables the subscription."""
    async with pool.connection() as conn, conn.transaction():
        if not await db.reenable(conn, sub_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such webhook")
        requeued = await db.requeue_failed(conn, sub_id, since=since)
    dispatcher.wake()
    return BulkRedeliverOut(requeued=requeued)
