"""The waste service's daily plan for tests: settings that make today (town time) a round day
from midnight, with the simulated town's depot, and today's plan recorded with them."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import SecretStr

from services.waste import planning
from services.waste.settings import WasteSettings
from shared.db import create_pool
from townpulse.simulator import build_town


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
