"""Generate a report: figures, PDF, archive row and its webhook event, in one transaction."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.api.adapters import reports as db
from services.api.reports import figures as fig
from services.api.reports import render
from services.api.reports.period import Period
from shared.factors import Factors
from shared.footprint import MAX_PERIOD as FOOTPRINT_MAX_PERIOD
from shared.footprint import Footprint, footprint_for
from shared.schemas import json_default

EVENT_TYPE = "report.published"
# A report's id says its period and language: the same request gives the same id.

# Which factors the report reads (keys of the factor table, shared/factors).
TARIFF = "electricity_eur_per_kwh"
TRUCK_FUEL = "refuse_truck_fuel_l_per_km"
TRUCK_CO2E = "refuse_truck_kg_co2e_per_km"
GRID_CO2E = "grid_kg_co2e_per_kwh"


class Factor(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def unit(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def year(self) -> int: ...
    @property
    def overridden(self) -> bool: ...


class FactorTable(Protocol):
    version: str

    def __getitem__(self, key: str) -> Factor: ...


FootprintOf = Callable[[fig.Conn, datetime, datetime], Awaitable[Mapping[str, Any] | None]]


async def no_footprint(conn: fig.Conn, start: datetime, end: datetime) -> None:
    return None


# The factors the platform's footprint is converted with (shared/footprint.py).
FOOTPRINT_FACTORS = (
    "server_idle_w",
    "server_w_per_busy_core",
    "server_w_per_gb_memory",
    "server_platform_share",
    "server_manufacture_kg_co2e",
    "server_lifetime_years",
)
MB = 1024 * 1024


def footprint_figures(fp: Footprint) -> dict[str, Any] | None:
    """The footprint as the report prints it; None when nothing was sampled in the period (an
    unknown, not a zero)."""
    if fp.coverage <= 0 or not fp.components:
        return None
    return {
        "kwh": round(fp.kwh, 3),
        "energy_source": fp.energy.source,
        "kg_co2e_energy": round(fp.kg_co2e_energy, 3),
        "kg_co2e_manufacture": round(fp.kg_co2e_manufacture, 3),
        "kg_co2e_total": round(fp.kg_co2e_total, 3),
        "coverage": round(fp.coverage, 4),
        "sampled_hours": round(fp.sampled_hours, 2),
        "cpu_core_hours": round(fp.cpu_core_hours, 3),
        "components": [
            {
                "name": c.component,
                "cpu_s": round(c.cpu_s, 1),
                "memory_mb": round(c.mean_rss_bytes / MB, 1),
                "peak_mb": round(c.peak_rss_bytes / MB, 1),
            }
            for c in fp.components
        ],
        "method": dict(fp.method),
    }


def measured_footprint(factors: Factors) -> FootprintOf:
    """The platform's own footprint from the samples the watch stores (shared/footprint.py)."""

    async def of(conn: fig.Conn, start: datetime, end: datetime) -> Mapping[str, Any] | None:
        # 366 local days from summer time to winter time are an hour longer than the sampler's
        # bound: that hour is left out.
        end = min(end, start + FOOTPRINT_MAX_PERIOD)
        return footprint_figures(await footprint_for(conn, start=start, end=end, factors=factors))

    return of


@dataclass(frozen=True, slots=True)
class Request:
    period: Period
    lang: str
    kind: str  # "monthly" or "on_demand"


def report_id(period: Period, lang: str) -> str:
    """
    >>> from datetime import date
    >>> report_id(Period(date(2026, 11, 1), date(2026, 12, 1), "UTC"), "fr")
    'rp_2026-11-01_2026-12-01_fr'
    """
    return f"rp_{period.start.isoformat()}_{period.end.isoformat()}_{lang}"


async def compute(
    conn: fig.Conn,
    period: Period,
    *,
    factors: FactorTable,
    thresholds: fig.Thresholds,
    footprint_of: FootprintOf,
    now: datetime,
) -> dict[str, Any]:
    """Every figure of the period (language-free)."""
    values = fig.params(period, thresholds)
    previous = fig.params(period.previous(), thresholds)
    waste = await fig.waste(
        conn,
        values,
        fuel_l_per_km=factors[TRUCK_FUEL].value,
        co2e_kg_per_km=factors[TRUCK_CO2E].value,
    )
    energy = await fig.energy(conn, values, tariff=factors[TARIFF].value)
    footprint = await footprint_of(conn, values["start"], values["end"])
    balance = fig.balance(waste=waste, footprint=footprint)
    balance["energy_waste_kg"] = round(energy["excess_kwh"] * factors[GRID_CO2E].value, 1)
    return {
        "period": fig.stamp(period, now),
        "factors_version": factors.version,
        "factors_used": [
            TARIFF,
            TRUCK_FUEL,
            TRUCK_CO2E,
            GRID_CO2E,
            *(FOOTPRINT_FACTORS if footprint is not None else ()),
        ],
        "energy": energy,
        "waste": waste,
        "traffic": await fig.traffic(conn, values, previous),
        "lighting": await fig.lighting(
            conn,
            values,
            tariff=factors[TARIFF].value,
            co2e_kg_per_kwh=factors[GRID_CO2E].value,
        ),
        "quality": await fig.quality(conn, values),
        "footprint": None if footprint is None else dict(footprint),
        "balance": balance,
        "thresholds": {
            "useful_fill_pct": thresholds.useful_fill_pct,
            "overflow_pct": thresholds.overflow_pct,
            "weak_rssi_dbm": thresholds.weak_rssi_dbm,
        },
    }


def factor_rows(factors: FactorTable, keys: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {
            "key": f.key,
            "value": f.value,
            "unit": f.unit,
            "source": f.source,
            "url": f.url,
            "year": f.year,
            "overridden": f.overridden,
        }
        for f in (factors[k] for k in keys)
    ]


async def has_readings(pool: Any, period: Period) -> bool:
    """Whether any reading was stored in the period (the monthly schedule's condition)."""
    start, end = period.bounds()
    async with pool.connection() as conn:
        return await db.has_readings(conn, start=start, end=end)


async def existing(conn: fig.Conn, period: Period, lang: str) -> dict[str, Any] | None:
    return await db.get_report(conn, report_id(period, lang))


async def generate(
    conn: fig.Conn,
    request: Request,
    *,
    factors: FactorTable,
    thresholds: fig.Thresholds,
    footprint_of: FootprintOf,
    now: datetime,
    download_base: str,
    extra_factor_keys: Sequence[str] = (),
) -> tuple[dict[str, Any], bool]:
    """The report of the period and language: (its row, whether it was made now).

    A report made after its period ended is final: asked again, the archived one is returned
    as it is (what was handed to the council does not change under it). One made while its
    period was still running is provisional: asked again, it is made again. Runs in the
    caller's transaction: the archive row and its webhook events commit together.
    """
    end = request.period.bounds()[1]
    found = await existing(conn, request.period, request.lang)
    if found is not None and found["generated_at"] >= end:
        return found, False
    figures = await compute(
        conn,
        request.period,
        factors=factors,
        thresholds=thresholds,
        footprint_of=footprint_of,
        now=now,
    )
    keys = [*figures["factors_used"], *extra_factor_keys]
    document = render.pdf(figures, lang=request.lang, factors=factor_rows(factors, keys))
    rid = report_id(request.period, request.lang)
    sha = hashlib.sha256(document).hexdigest()
    row = await db.save_report(
        conn,
        {
            "id": rid,
            "period_start": request.period.start,
            "period_end": request.period.end,
            "lang": request.lang,
            "kind": request.kind,
            "generated_at": now,
            "factors_version": factors.version,
            "figures": figures,
            "pdf": document,
            "size_bytes": len(document),
            "sha256": sha,
        },
        replaces_before=end,
    )
    if row is None:  # another instance made it final between our check and our write
        again = await existing(conn, request.period, request.lang)
        assert again is not None
        return again, False
    await announce(conn, row, download_base=download_base, now=now)
    return row, True


def event_body(row: Mapping[str, Any], *, download_base: str, now: datetime) -> str:
    """The Standard Webhooks body of `report.published` (the alerts' events have the same shape).

    >>> from datetime import UTC, date
    >>> row = {"id": "rp_x", "period_start": date(2026, 11, 1), "period_end": date(2026, 12, 1),
    ...        "lang": "fr", "kind": "monthly", "factors_version": "v", "size_bytes": 3,
    ...        "sha256": "ab"}
    >>> event_body(row, download_base="https://t.example", now=datetime(2026, 12, 1, tzinfo=UTC))
    ... # doctest: +ELLIPSIS
    '{"type":"report.published",...,"download_url":"https://t.example/v1/reports/rp_x/pdf"}}'
    """
    data = {
        "id": row["id"],
        "period_start": row["period_start"].isoformat(),
        "period_end": row["period_end"].isoformat(),
        "lang": row["lang"],
        "kind": row["kind"],
        "factors_version": row["factors_version"],
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
        "download_url": f"{download_base}/v1/reports/{row['id']}/pdf",
    }
    doc = {"type": EVENT_TYPE, "timestamp": now, "data": data}
    return json.dumps(doc, default=json_default, separators=(",", ":"))


async def announce(
    conn: fig.Conn, row: Mapping[str, Any], *, download_base: str, now: datetime
) -> int:
    """Queue the event for every enabled webhook that asked for it; the alerts service's
    dispatcher signs and delivers it like an alert's. Returns how many were queued."""
    subs = await db.subscribers(conn, EVENT_TYPE)
    if not subs:
        return 0
    body = event_body(row, download_base=download_base, now=now)
    msg_id = f"msg_{uuid.uuid4().hex}"
    # The outbox's ordering key per subject (its alert_id): here, the report.
    await db.enqueue_event(
        conn, subs, msg_id=msg_id, subject=row["id"], event_type=EVENT_TYPE, body=body
    )
    return len(subs)
