"""The waste service's daily plan for tests: settings that make today (town time) a round day
from midnight, with the simulated town's depot, and today's plan recorded with them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import SecretStr

from services.waste import planning
from services.waste.settings import WasteSettings
from shared.db import create_pool
from shared.schemas import Reading, ReadingBatch
from shared.topics import READINGS_TOPICS, Domain
from tests.runtime_support import produce
from townpulse.simulator.town import build_town


def settings_now(url: str, *, round_day: bool) -> WasteSettings:
    """Today a round day from midnight (or not: the rounds are tomorrow)."""
    lat, lon = build_town(energy=0, waste=0, traffic=0).depot
    weekday = datetime.now(planning.town_tz(WasteSettings(dev_mode=True))).weekday()
    return WasteSettings(
        dev_mode=True,
        database_url=SecretStr(url),
        depot=f"{lat},{lon}",
        round_weekdays=[weekday] if round_day else [(weekday + 1) % 7],
        round_hour=0.0,
        fixed_visits_per_week=1.3,
        plan_time_limit_s=0.5,
    )


async def record_today(url: str) -> planning.Outcome:
    """Today's plan, recorded as the service's task records it (unless it is already)."""
    s = settings_now(url, round_day=True)
    pool = create_pool(s.database_url)
    await pool.open()
    try:
        return await planning.record_due_plan(pool, s, now=datetime.now(UTC))
    finally:
        await pool.close()


def add_full_bins(
    api: httpx.Client, bootstrap: str, *, prefix: str, around: tuple[float, float], n: int = 8
) -> dict[str, tuple[float, float]]:
    """`n` bins registered around a depot, each at 85 % and rising (read straight onto the
    waste readings topic): due in the next round. Their ids, with their positions."""
    lat0, lon0 = around
    bins = {
        f"{prefix}{i}": (
            lat0 + 0.004 * math.cos(i * 0.8) * (1 + i % 2),
            lon0 + 0.005 * math.sin(i * 0.8) * (1 + i % 2),
        )
        for i in range(n)
    }
    for device_id, (lat, lon) in bins.items():
        r = api.post(
            "/v1/devices",
            json={"id": device_id, "domain": "waste", "location": {"lat": lat, "lon": lon}},
        )
        assert r.status_code == 201, r.text
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    batches = [
        ReadingBatch(
            device_id=d,
            domain=Domain.WASTE,
            received_at=now,
            readings=[
                Reading(ts=now - timedelta(minutes=15 * (4 - k)), metric="fill_pct", value=85.0 + k)
            ],
        )
        for k in range(4)
        for d in bins
    ]
    produce(bootstrap, READINGS_TOPICS[Domain.WASTE], batches)
    return bins
