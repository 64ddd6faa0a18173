"""Time and size of the monthly report for the simulated town (docs/report.md).

Needs the local stack with the simulator's town. For a full month of history, start the stack
with a gateway that takes readings that old (it refuses those over 7 days old by default) and
let the simulator publish the month (about 12 minutes at speed 2500 on 2 cores):

    TOWNPULSE_MAX_AGE_S=3456000 .venv/bin/python -m townpulse up --no-sim
    TOWNPULSE_MAX_AGE_S=3456000 .venv/bin/python -m townpulse simulate --backfill 31d \
        --speed 2500 --inject all

Then, with the town's last `--days` whole days as the period:

    .venv/bin/python -m bench.report_generation [--days 30] [--runs 3]

Each run computes every figure from the database (the report's own queries, the footprint
included) and draws the PDF, in this process and without archiving it (the API's POST does the
same plus one INSERT). Reported: the median seconds of the queries and of the drawing, the PDF's
bytes and pages, and the rows the period holds in each table the report reads (what the time
depends on), with the days of history the town actually has.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pypdf
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from bench.common import run_meta, write_result
from services.api.reports import figures, render, service
from services.api.reports.period import Period
from shared.factors import load_factors
from shared.settings import ServiceSettings
from townpulse.stack import Stack

# The tables the report reads, with their time column.
TABLES = {
    "energy_scores": "ts",
    "energy_episodes": "started_at",
    "waste_collections": "ts",
    "waste_plans": "day",
    "traffic_episodes": "started_at",
    "readings": "ts",
    "deadletters": "received_at",
    "device_uplinks": "ts",
    "platform_footprint": "ts",
}


async def measure(days: int, runs: int) -> dict[str, Any]:
    timezone = ServiceSettings().timezone
    today = datetime.now(ZoneInfo(timezone)).date()
    period = Period(today - timedelta(days=days), today, timezone)
    start, end = period.bounds()
    factors = load_factors()
    footprint_of = service.measured_footprint(factors)
    query_s: list[float] = []
    draw_s: list[float] = []
    pdf = b""
    async with await AsyncConnection.connect(
        Stack().database_url(), autocommit=True, row_factory=dict_row
    ) as conn:
        rows = {}
        for table, column in TABLES.items():
            bound = (period.start, period.end) if column == "day" else (start, end)
            cur = await conn.execute(
                f"SELECT count(*) AS n FROM {table} WHERE {column} >= %s AND {column} < %s",  # noqa: S608
                bound,
            )
            rows[table] = (await cur.fetchone() or {"n": 0})["n"]
        first = await (await conn.execute("SELECT min(ts) AS t FROM energy_scores")).fetchone()
        for _ in range(runs):
            t0 = time.perf_counter()
            figs = await service.compute(
                conn,
                period,
                factors=factors,
                thresholds=figures.Thresholds(),
                footprint_of=footprint_of,
                now=datetime.now(ZoneInfo(timezone)),
            )
            t1 = time.perf_counter()
            keys = figs["factors_used"]
            pdf = render.pdf(figs, lang="fr", factors=service.factor_rows(factors, keys))
            t2 = time.perf_counter()
            query_s.append(t1 - t0)
            draw_s.append(t2 - t1)
    oldest = first["t"] if first else None
    history = (end - oldest).total_seconds() / 86400 if oldest is not None else 0.0
    return {
        "period": {"start": str(period.start), "end": str(period.end), "days": days},
        "history_days_in_database": round(min(history, days), 2),
        "rows_in_period": rows,
        "runs": runs,
        "queries_s_median": round(statistics.median(query_s), 3),
        "render_s_median": round(statistics.median(draw_s), 3),
        "total_s_median": round(
            statistics.median(q + d for q, d in zip(query_s, draw_s, strict=True)), 3
        ),
        "pdf_bytes": len(pdf),
        "pdf_pages": len(pypdf.PdfReader(io.BytesIO(pdf)).pages),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = {
        "meta": run_meta(),
        "benchmark": "report_generation",
        **asyncio.run(measure(args.days, args.runs)),
    }
    path = write_result("report_generation", result)
    print(path)
    for k in ("history_days_in_database", "total_s_median", "pdf_bytes", "pdf_pages"):
        print(f"{k}: {result[k]}")


if __name__ == "__main__":
    main()
