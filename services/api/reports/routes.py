"""Reports: list, read, download, and generate one for any period."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict

from services.api.adapters import reports as db
from services.api.reports import figures, service
from services.api.reports.period import Period, PeriodError, last_month
from services.api.settings import ApiSettings
from shared.db import Pool
from shared.factors import Factors
from shared.http import AppPool, AppResource, Operator, Viewer
from shared.inputs import Day, utcnow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/reports", tags=["reports"])

ReportId = Annotated[str, Path(max_length=64, pattern=r"^rp_[0-9-]{10}_[0-9-]{10}_(fr|en)$")]
# Generating takes a few seconds of CPU (the PDF): one at a time per API process, so a burst of
# requests queues instead of starving the other routes of the event loop's thread pool.
_GENERATE = asyncio.Lock()


@dataclass(frozen=True, slots=True)
class Reporting:
    """What making a report needs of the running API (its app's start-up puts it)."""

    pool: Pool
    settings: ApiSettings
    # Read once: a report names the table's version it used.
    factors: Factors
    thresholds: figures.Thresholds
    footprint_of: service.FootprintOf


REPORTING: AppResource[Reporting] = AppResource("reporting")
AppReporting = Annotated[Reporting, Depends(REPORTING)]


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Day
    end: Day  # exclusive
    lang: Literal["fr", "en"] = "fr"


class ReportOut(BaseModel):
    id: str
    period_start: date
    period_end: date
    lang: str
    kind: str
    generated_at: Any
    factors_version: str
    size_bytes: int
    sha256: str
    pdf_url: str


def _out(row: dict[str, Any]) -> ReportOut:
    return ReportOut(**row, pdf_url=f"/v1/reports/{row['id']}/pdf")


async def generate(
    reporting: Reporting, period: Period, *, lang: str, kind: str
) -> tuple[dict[str, Any], bool]:
    async with _GENERATE, reporting.pool.connection() as conn, conn.transaction():
        return await service.generate(
            conn,
            service.Request(period, lang, kind),
            factors=reporting.factors,
            thresholds=reporting.thresholds,
            footprint_of=reporting.footprint_of,
            now=utcnow(),
            download_base=str(reporting.settings.public_base_url or "").rstrip("/"),
        )


@router.post("", response_model=ReportOut, status_code=status.HTTP_201_CREATED)
async def create_report(
    reporting: AppReporting, response: Response, body: ReportRequest, _: Operator
) -> ReportOut:
    """The report of [start, end) in a language (local days): made now (201), or the archived
    final one (200). A period not yet over gives a provisional report, made again when asked."""
    try:
        period = Period(body.start, body.end, reporting.settings.timezone)
    except PeriodError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    if period.bounds()[0] >= utcnow():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "the period has not begun")
    kind = "monthly" if period.is_month() else "on_demand"
    row, made = await generate(reporting, period, lang=body.lang, kind=kind)
    if not made:
        response.status_code = status.HTTP_200_OK
    return _out(row)


@router.get("", response_model=list[ReportOut])
async def list_reports(pool: AppPool, _: Viewer) -> list[ReportOut]:
    """The archive, newest period first (a row per period and language; no PDF bytes)."""
    async with pool.connection() as conn:
        return [_out(r) for r in await db.list_reports(conn, limit=1000)]


@router.get("/{report_id}")
async def get_report(pool: AppPool, report_id: ReportId, _: Viewer) -> dict[str, Any]:
    """One report's archive row and every figure it printed."""
    async with pool.connection() as conn:
        row = await db.get_report(conn, report_id, figures=True)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report")
    figures = row.pop("figures")
    return {**_out(row).model_dump(), "figures": figures}


@router.get("/{report_id}/pdf", response_class=Response)
async def download_report(pool: AppPool, report_id: ReportId, _: Viewer) -> Response:
    async with pool.connection() as conn:
        row = await db.report_pdf(conn, report_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report")
    return Response(
        bytes(row["pdf"]),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="townpulse-{report_id}.pdf"',
            "ETag": f'"{row["sha256"]}"',
        },
    )


async def monthly(reporting: Reporting) -> None:
    """Every check: last month's report in each language, made if missing (idempotent)."""
    settings = reporting.settings
    while True:
        period = last_month(utcnow(), settings.timezone)
        try:
            # A town that started after the month ended has nothing to say about it: an empty
            # report, archived as final, would be handed to the council as if it were true.
            measured = await service.has_readings(reporting.pool, period)
        except Exception:
            log.exception("monthly report %s: the database could not be asked", period.start)
            measured = False
        for lang in settings.report_languages if measured else ():
            try:
                _, made = await generate(reporting, period, lang=lang, kind="monthly")
                if made:
                    log.info("monthly report %s %s archived", period.start, lang)
            except Exception:
                # The database may be restarting; the next check tries again.
                log.exception("monthly report %s %s failed", period.start, lang)
        await asyncio.sleep(settings.report_check_interval_s)
