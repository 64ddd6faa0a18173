"""Alerts (list, detail with timeline, acknowledge, resolve, feedback, precision) and alert rules
(CRUD)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from services.alerts import service
from services.alerts.adapters import repository as repo
from services.alerts.deps import AppDispatcher
from services.alerts.dispatcher import Dispatcher
from services.alerts.domain import feedback as fb
from services.alerts.domain.lifecycle import Alert, InvalidTransition
from services.alerts.domain.rules import default_kind
from services.alerts.schemas import (
    ActionIn,
    AlertDetail,
    AlertOut,
    DomainPrecisionOut,
    FeedbackIn,
    FeedbackOut,
    PrecisionOut,
    RuleIn,
    RuleOut,
    TimelineEntry,
)
from shared.db import Pool
from shared.http import Admin, AppPool, Operator, Viewer, check_time
from shared.schemas import Severity
from shared.topics import AlertDomain

router = APIRouter(prefix="/v1", tags=["alerts"])

State = Annotated[str | None, Query(pattern="^(open|acknowledged|resolved)$")]


def _out(alert: Alert, feedback: dict[str, Any] | None = None) -> AlertOut:
    return AlertOut(**service.public(alert), feedback=FeedbackOut(**feedback) if feedback else None)


def _wake(dispatcher: Dispatcher, applied: service.Applied) -> None:
    service.count(applied)
    if applied.outbox:
        dispatcher.wake()


@router.get("/alerts", response_model=list[AlertOut])
async def list_alerts(
    pool: AppPool,
    _: Viewer,
    state: State = None,
    domain: AlertDomain | None = None,
    severity: Severity | None = None,
    device_id: str | None = None,
    kind: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AlertOut]:
    """Alerts open at some time in [start, end), newest first."""
    async with pool.connection() as conn:
        alerts = await repo.list_alerts(
            conn,
            state=state,
            domain=str(domain) if domain else None,
            severity=severity.value if severity else None,
            device_id=device_id,
            kind=kind,
            start=check_time(start, "start"),
            end=check_time(end, "end"),
            limit=limit,
        )
        verdicts = await repo.latest_feedback(conn, [a.id for a in alerts])
    return [_out(a, verdicts.get(a.id)) for a in alerts]


@router.get("/alerts/precision", response_model=PrecisionOut)
async def precision(
    pool: AppPool,
    _: Viewer,
    days: Annotated[int, Query(ge=1, le=fb.MAX_PRECISION_DAYS)] = fb.PRECISION_DAYS,
) -> PrecisionOut:
    """Per domain, of the alerts opened in the last `days` days: real / (real + false alarm)
    by their latest verdict, and how many have no verdict (precision null when none judged)."""
    since = datetime.now(UTC) - timedelta(days=days)
    async with pool.connection() as conn:
        rows = await repo.verdict_counts(conn, since=since)
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["domain"], {})[r["verdict"]] = int(r["n"])
    return PrecisionOut(
        days=days,
        since=since,
        domains=[
            DomainPrecisionOut(
                **fb.DomainPrecision(
                    domain=domain,
                    real=c.get(fb.Verdict.REAL, 0),
                    false_alarm=c.get(fb.Verdict.FALSE_ALARM, 0),
                    expected=c.get(fb.Verdict.EXPECTED, 0),
                    without_feedback=c.get("none", 0),
                ).public()
            )
            for domain, c in sorted(counts.items())
        ],
    )


@router.get("/alerts/{alert_id}", response_model=AlertDetail)
async def get_alert(alert_id: str, pool: AppPool, _: Viewer) -> AlertDetail:
    """One alert with its explanation and timeline."""
    async with pool.connection() as conn:
        alert = await repo.get_alert(conn, alert_id)
        if alert is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such alert")
        timeline = await repo.timeline(conn, alert_id)
        verdict = (await repo.latest_feedback(conn, [alert_id])).get(alert_id)
    return AlertDetail(
        **service.public(alert),
        feedback=FeedbackOut(**verdict) if verdict else None,
        damping={
            "min_duration_s": alert.damping.min_duration_s,
            "cooldown_s": alert.damping.cooldown_s,
        },
        timeline=[TimelineEntry(**t) for t in timeline],
    )


async def _act(
    pool: Pool, dispatcher: Dispatcher, alert_id: str, *, action: str, by: str, note: str
) -> AlertOut:
    try:
        async with pool.connection() as conn, conn.transaction():
            alert, applied = await service.operator_action(
                conn, alert_id, action=action, by=by, note=note, now=datetime.now(UTC)
            )
            verdict = (await repo.latest_feedback(conn, [alert_id])).get(alert_id)
    except InvalidTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such alert")
    _wake(dispatcher, applied)
    return _out(alert, verdict)


def _note(body: ActionIn | None) -> str:
    return body.note if body else ""


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut)
async def acknowledge(
    alert_id: str,
    pool: AppPool,
    dispatcher: AppDispatcher,
    who: Operator,
    body: ActionIn | None = None,
) -> AlertOut:
    """Acknowledge an open alert (idempotent)."""
    return await _act(
        pool, dispatcher, alert_id, action="ack", by=f"key:{who.key_id}", note=_note(body)
    )


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut)
async def resolve(
    alert_id: str,
    pool: AppPool,
    dispatcher: AppDispatcher,
    who: Operator,
    body: ActionIn | None = None,
) -> AlertOut:
    """Resolve an alert by hand (idempotent)."""
    return await _act(
        pool, dispatcher, alert_id, action="resolve", by=f"key:{who.key_id}", note=_note(body)
    )


@router.post(
    "/alerts/{alert_id}/feedback", status_code=status.HTTP_201_CREATED, response_model=FeedbackOut
)
async def give_feedback(
    alert_id: str, body: FeedbackIn, request: Request, pool: AppPool, who: Operator
) -> FeedbackOut:
    """Mark an alert real, a false alarm or expected, with an optional note. Any alert but a
    pending one, resolved ones included; a later verdict replaces this one (both are kept).
    The device's model takes it into account from its next reading (docs/energy.md)."""
    # Kept in the audit log's entry too: the history of verdicts, with who gave them.
    request.state.audit_detail = {"verdict": body.verdict.value, "note": body.note}
    async with pool.connection() as conn, conn.transaction():
        alert = await repo.get_alert(conn, alert_id, lock=True)
        if alert is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such alert")
        start, end = fb.episode_period(
            explanation=alert.explanation,
            first_seen=alert.first_seen,
            last_seen=alert.last_seen,
            active=alert.active,
        )
        row = await repo.add_feedback(
            conn,
            {
                "alert_id": alert.id,
                "device_id": alert.device_id,
                "domain": alert.domain,
                "kind": alert.kind,
                "verdict": body.verdict.value,
                "note": body.note,
                "episode_start": start,
                "episode_end": end,
                "given_by": f"key:{who.key_id}",
            },
        )
    return FeedbackOut(**row)


@router.get("/alerts/{alert_id}/feedback", response_model=list[FeedbackOut])
async def feedback_history(alert_id: str, pool: AppPool, _: Viewer) -> list[FeedbackOut]:
    """Every verdict given on an alert, newest first (the first one counts)."""
    async with pool.connection() as conn:
        if await repo.get_alert(conn, alert_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such alert")
        return [FeedbackOut(**r) for r in await repo.feedback_history(conn, alert_id)]


# ---- rules ------------------------------------------------------------------------------------


def _rule_row(rule_id: str, body: RuleIn) -> dict[str, Any]:
    return {
        **body.model_dump(),
        "id": rule_id,
        "domain": body.domain.value,
        "severity": body.severity.value,
        "kind": body.kind or default_kind(domain=body.domain.value, metric=body.metric, op=body.op),
    }


@router.post("/alert-rules", status_code=status.HTTP_201_CREATED, response_model=RuleOut)
async def create_rule(body: RuleIn, request: Request, pool: AppPool, _: Admin) -> RuleOut:
    """Create a rule; it applies to readings consumed from now on."""
    rule_id = request.state.audit_target = f"rule_{uuid.uuid4().hex[:16]}"
    async with pool.connection() as conn, conn.transaction():
        row = await repo.upsert_rule(conn, _rule_row(rule_id, body))
    return RuleOut(**row)


@router.get("/alert-rules", response_model=list[RuleOut])
async def list_rules(pool: AppPool, _: Viewer) -> list[RuleOut]:
    """Every rule."""
    async with pool.connection() as conn:
        return [RuleOut(**r) for r in await repo.list_rules(conn)]


@router.get("/alert-rules/{rule_id}", response_model=RuleOut)
async def get_rule(rule_id: str, pool: AppPool, _: Viewer) -> RuleOut:
    """One rule."""
    async with pool.connection() as conn:
        row = await repo.get_rule(conn, rule_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such rule")
    return RuleOut(**row)


@router.put("/alert-rules/{rule_id}", response_model=RuleOut)
async def replace_rule(
    rule_id: str, body: RuleIn, pool: AppPool, dispatcher: AppDispatcher, _: Admin
) -> RuleOut:
    """Replace a rule; disabling it resolves its current alerts."""
    async with pool.connection() as conn, conn.transaction():
        if await repo.get_rule(conn, rule_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such rule")
        row = await repo.upsert_rule(conn, _rule_row(rule_id, body))
        applied = service.Applied()
        if not body.enabled:
            applied = await service.resolve_rule_alerts(conn, rule_id, now=datetime.now(UTC))
    _wake(dispatcher, applied)
    return RuleOut(**row)


@router.delete("/alert-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(rule_id: str, pool: AppPool, dispatcher: AppDispatcher, _: Admin) -> Response:
    """Delete a rule and resolve its current alerts."""
    async with pool.connection() as conn, conn.transaction():
        if not await repo.delete_rule(conn, rule_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such rule")
        applied = await service.resolve_rule_alerts(conn, rule_id, now=datetime.now(UTC))
    _wake(dispatcher, applied)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
