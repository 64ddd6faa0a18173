"""The service's daily task against the stack's database: it records the day's plan without any
request, once (a second pass, and the API's own plan of the day, leave the row as it is)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from services.waste import planning
from shared.db import Pool, create_pool
from tests.data_rows import connect
from tests.support import until
from tests.waste_support import settings_now
from townpulse.simulator.town import build_town
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

DEADLINE_S = 120.0


async def _rows(pool: Pool, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        return list(await (await conn.execute(sql, args)).fetchall())


async def _scenario(url: str) -> tuple[date, dict[str, Any], str, str, list[dict[str, Any]]]:
    s = settings_now(url, round_day=True)
    today = datetime.now(planning.town_tz(s)).date()
    pool = create_pool(s.database_url)
    await pool.open()
    try:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM waste_plans WHERE day = %s", (today,))
        task = asyncio.create_task(planning.daily_plans(pool, s))

        async def recorded() -> list[dict[str, Any]]:
            assert not task.done(), f"the task ended: {task.exception()!r}"
            return await _rows(pool, "SELECT * FROM waste_plans WHERE day = %s", today)

        try:
            found = await until(
                recorded, within_s=DEADLINE_S, interval=0.2, what="the task to record today's plan"
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        again = await planning.record_due_plan(pool, s, now=datetime.now(UTC))
        not_due = await planning.record_due_plan(
            pool, settings_now(url, round_day=False), now=datetime.now(UTC)
        )
        located = await _rows(
            pool,
            "SELECT b.device_id FROM waste_bins b LEFT JOIN devices d ON d.id = b.device_id"
            " WHERE d.lat IS NOT NULL AND d.lon IS NOT NULL AND d.deleted_at IS NULL",
        )
        return today, found[0], again, not_due, located
    finally:
        await pool.close()


def test_the_task_records_the_days_plan_once(stack: Stack, api: httpx.Client) -> None:
    today, row, again, not_due, located = asyncio.run(_scenario(stack.database_url()))
    assert again == "recorded"  # a second pass keeps the first plan
    assert not_due == "not_due"  # a day that is not a round day: nothing to record
    assert row["every_bins"] == len(located)
    assert 0 <= row["bins"] <= row["every_bins"]
    assert 0 <= row["km"] <= row["every_bin_km"] + 1e-6
    assert (row["fixed_visits_per_week"], row["rounds_per_week"], row["vehicles"]) == (1.3, 1, 1)

    # The API's plan of the day, whoever opens it, does not replace the recorded one. The
    # depot is given: the suite's stack runs without the simulated town, whose depot `make up`
    # configures.
    lat, lon = build_town(energy=0, waste=0, traffic=0).depot
    plan = api.get("/v1/waste/plan", params={"depot": f"{lat},{lon}"})
    assert plan.status_code == 200, plan.text

    async def rows() -> list[dict[str, Any]]:
        async with await connect(stack.database_url()) as conn:
            cur = await conn.execute("SELECT * FROM waste_plans WHERE day = %s", (today,))
            return list(await cur.fetchall())

    assert asyncio.run(rows()) == [row]
