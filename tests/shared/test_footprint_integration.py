"""footprint_for's SQL on made-up samples (a database of its own, so the stack's real samples
stay out): counters subtracted within a process, a restart counted from its start, a counter
that went down counted as nothing, samples outside the period ignored, RAPL across a wrap and
not across a long gap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection

from shared.factors import load_factors
from shared.footprint import UJ_PER_KWH, footprint_for
from tests.data_rows import connect, plain_database
from townpulse.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.plain_postgres]

T0 = datetime(2026, 3, 1, tzinfo=UTC)
S0 = T0 - timedelta(hours=1)  # the first process's start
S1 = T0 + timedelta(seconds=100)  # the restarted one's
F = load_factors()

# (seconds after T0, cpu_s, rss_bytes, started_at)
SVC = [
    (-60, 0.0, 100, S0),  # before the period: not counted
    (0, 10.0, 100, S0),
    (60, 16.0, 300, S0),  # +6
    (120, 4.0, 200, S1),  # restarted at +100 s, after the previous sample: +4
    (180, 3.0, 200, S1),  # went down without a restart: nothing
    (240, 5.0, 200, S1),  # +2
]
# A process replaced by one that started before the previous sample: cannot be told, nothing.
ODD = [(0, 5.0, 50, S0), (60, 9.0, 50, S0 - timedelta(minutes=5))]
# (seconds after T0, energy_uj); the counter wraps at 1000.
RAPL = [(0, 900), (60, 100), (120, 600), (120 + 700, 700)]


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[AsyncConnection[Any]]:
    async with plain_database(stack) as url, await connect(url) as conn:
        for name, rows in (("svc", SVC), ("odd", ODD)):
            for dt, cpu, rss, started in rows:
                await conn.execute(
                    "INSERT INTO platform_footprint (ts, component, source, cpu_s, rss_bytes,"
                    " processes, started_at) VALUES (%s, %s, 'proc', %s, %s, 1, %s)",
                    (T0 + timedelta(seconds=dt), name, cpu, rss, started),
                )
        for dt, uj in RAPL:
            await conn.execute(
                "INSERT INTO platform_footprint (ts, component, source, energy_uj,"
                " energy_range_uj) VALUES (%s, 'rapl:package-0', 'rapl', %s, 1000)",
                (T0 + timedelta(seconds=dt), uj),
            )
        yield conn


async def test_counters_restarts_and_the_period(db: AsyncConnection[Any]) -> None:
    end = T0 + timedelta(seconds=241)
    fp = await footprint_for(db, start=T0, end=end, factors=F)
    by = {c.component: c for c in fp.components}
    assert set(by) == {"svc", "odd"}
    assert by["svc"].cpu_s == pytest.approx(6 + 4 + 0 + 2)
    assert by["odd"].cpu_s == 0
    assert by["svc"].samples == 5
    assert by["svc"].mean_rss_bytes == pytest.approx((100 + 300 + 200 + 200 + 200) / 5)
    assert by["svc"].peak_rss_bytes == 300
    assert fp.sampled_hours == pytest.approx(240 / 3600)
    assert fp.coverage == pytest.approx(240 / 241)
    # RAPL counted 120 s of the 240 s sampled (the next gap is too long): the model stands.
    assert fp.energy.source == "model"


async def test_rapl_across_a_wrap_stands_in_for_the_model(db: AsyncConnection[Any]) -> None:
    end = T0 + timedelta(seconds=121)
    fp = await footprint_for(db, start=T0, end=end, factors=F)
    assert fp.energy.source == "rapl"
    # 900 -> 100 across the wrap at 1000 (+200), then 100 -> 600 (+500).
    assert fp.energy.kwh_rapl == pytest.approx(700 / UJ_PER_KWH)
    assert fp.kwh == pytest.approx(700 / UJ_PER_KWH * F["server_platform_share"].value)
