"""A day's collection plan: one computation for the API's answer and for the daily record.

The town's own plan of each round day (its depot, its trucks and shifts) is recorded in
`waste_plans` once, by the service itself at the round hour (`daily_plans`, a supervised task),
or earlier if an operator opens it first: the monthly report compares the recorded plans with
the town's fixed schedule (docs/report.md). A what-if (another depot, day, fleet or shift) is
answered and not recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg

from services.waste.adapters import db
from services.waste.domain.plan import (
    BinStatus,
    Point,
    Shift,
    best_round,
    due_bins,
    fitting,
    next_round,
    plan_routes,
    trucks_note,
)
from services.waste.settings import WasteSettings
from shared.db import Pool
from shared.factors import load_factors

log = logging.getLogger(__name__)

# The waste API's CO2 figures use the factor table's, as the monthly report does.
TRUCK_CO2E = "refuse_truck_kg_co2e_per_km"
# The task looks again at least this often (a changed clock, summer time, an outage).
RECHECK_S = 3600.0
RETRY_S = 60.0


Outcome = Literal["saved", "recorded", "not_due", "no_depot", "unserved"]


class PlanError(ValueError):
    """A plan that cannot be asked for (no depot, a malformed one)."""


@dataclass(frozen=True, slots=True)
class PlanAsk:
    """What a plan is computed for."""

    day: date
    depot: Point
    vehicles: int
    capacity: int | None
    shift: Shift


@dataclass(frozen=True, slots=True)
class DayPlan:
    ask: PlanAsk
    bins: int
    every_bins: int
    unserved: int
    km: float
    every_bin_km: float
    answer: dict[str, Any]


def parse_point(text: str) -> Point:
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise PlanError("depot: 'lat,lon' in decimal degrees") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise PlanError("depot: latitude or longitude out of range")
    return Point("depot", lat, lon)


def town_tz(settings: WasteSettings) -> ZoneInfo:
    return ZoneInfo(settings.timezone)


def ask_for(
    settings: WasteSettings,
    *,
    day: date,
    depot: str | None = None,
    vehicles: int | None = None,
    capacity: int | None = None,
    shift_h: float | None = None,
) -> PlanAsk:
    """A plan request, the settings filling what it does not say (the town's own plan when it
    says nothing)."""
    depot = depot or settings.depot
    if depot is None:
        raise PlanError("depot: give 'lat,lon' (no default depot is configured)")
    return PlanAsk(
        day=day,
        depot=parse_point(depot),
        vehicles=vehicles or settings.round_trucks,
        capacity=capacity or settings.truck_bins,
        shift=Shift(
            hours=shift_h or settings.shift_h,
            speed_kmh=settings.truck_speed_kmh,
            stop_min=settings.stop_min,
        ),
    )


def round_at(day: date, *, hour: float, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tz) + timedelta(hours=hour)


def due_day(now: datetime, *, weekdays: Collection[int], hour: float, tz: ZoneInfo) -> date | None:
    """The round day whose plan should be recorded by now: today (town time) if it is a round
    day and its round hour has passed, else None. A service started after the round hour
    catches the day up; a day gone is not (its bins' state is not the morning's any more).

    >>> tz = ZoneInfo("Europe/Paris")
    >>> monday_7 = datetime(2026, 3, 9, 7, tzinfo=tz)
    >>> due_day(monday_7, weekdays=[0, 2, 4], hour=6, tz=tz)
    datetime.date(2026, 3, 9)
    >>> due_day(monday_7, weekdays=[0, 2, 4], hour=8, tz=tz) is None
    True
    """
    local = now.astimezone(tz)
    day = local.date()
    if day.weekday() in weekdays and local >= round_at(day, hour=hour, tz=tz):
        return day
    return None


def next_wake(now: datetime, *, weekdays: Collection[int], hour: float, tz: ZoneInfo) -> datetime:
    """The first round hour strictly after `now` (at most eight days ahead)."""
    today = now.astimezone(tz).date()
    for ahead in range(9):
        at = round_at(today + timedelta(days=ahead), hour=hour, tz=tz)
        if at > now and at.date().weekday() in weekdays:
            return at
    return now + timedelta(days=1)


async def compute(pool: Pool, settings: WasteSettings, ask: PlanAsk) -> DayPlan:
    """The round of `ask.day`: bins full before the next round, and a route per truck."""
    tz = town_tz(settings)
    home, shift, vehicles, capacity = ask.depot, ask.shift, ask.vehicles, ask.capacity
    following = next_round(ask.day, settings.round_weekdays)
    next_round_at = round_at(following, hour=settings.round_hour, tz=tz)
    async with pool.connection() as conn:
        rows = await db.all_bins(conn)
    statuses = [BinStatus(r["id"], r["lat"], r["lon"], r["level_pct"], r["full_at"]) for r in rows]
    due = due_bins(statuses, next_round_at=next_round_at)
    located = [b for b in due if b.lat is not None and b.lon is not None]
    every = [b for b in statuses if b.lat is not None and b.lon is not None]

    def points(bins: list[BinStatus]) -> list[Point]:
        return [Point(b.id, float(b.lat or 0), float(b.lon or 0)) for b in bins]

    limit, detour = settings.plan_time_limit_s, settings.road_detour
    # The most urgent first: what does not fit in the trucks' loads and shifts waits.
    room = await asyncio.to_thread(
        fitting,
        home,
        points(located),
        vehicles=vehicles,
        capacity=capacity,
        shift=shift,
        detour=detour,
    )
    served, unserved = located[:room], located[room:]
    # The solver blocks for up to its time limit: off the event loop.
    plan, full = await asyncio.gather(
        asyncio.to_thread(
            plan_routes,
            home,
            points(served),
            vehicles=vehicles,
            capacity=capacity,
            shift=shift,
            time_limit_s=limit,
            detour=detour,
        ),
        # A tour of every bin: the day's own comparison, and the unit of the fixed schedule
        # the monthly report compares with (whatever the capacity and the shift, one tour per
        # truck).
        asyncio.to_thread(
            plan_routes,
            home,
            points(every),
            vehicles=vehicles,
            capacity=None,
            time_limit_s=limit,
            detour=detour,
        ),
    )
    plan = best_round(
        plan, full, home, points(served), capacity=capacity, detour=detour, shift=shift
    )
    by_id = {r["id"]: r for r in rows}
    km, all_km = plan.distance_m / 1000, full.distance_m / 1000
    co2 = load_factors(settings.factors).value(TRUCK_CO2E)
    answer = {
        "date": ask.day,
        "round_at": round_at(ask.day, hour=settings.round_hour, tz=tz),
        "next_round_at": next_round_at,
        "full_pct": settings.full_pct,
        "depot": {"lat": home.lat, "lon": home.lon},
        "bins": [_stop(by_id[b.id]) for b in served],
        "unserved": [_stop(by_id[b.id]) for b in unserved],
        "unlocated": [b.id for b in due if b.lat is None or b.lon is None],
        "routes": [
            {
                "vehicle": i + 1,
                "stops": [_stop(by_id[s]) for s in stops],
                "km": round(m / 1000, 3),
                "hours": round(shift.route_s(m, len(stops)) / 3600, 2) if stops else 0.0,
            }
            for i, (stops, m) in enumerate(zip(plan.routes, plan.route_m, strict=True))
        ],
        "trucks": trucks_note(
            plan, asked=vehicles, shift=shift, capacity=capacity, unserved=len(unserved)
        ),
        "km": round(km, 3),
        "co2_kg": round(km * co2, 2),
        "every_bin": {"bins": len(every), "km": round(all_km, 3), "co2_kg": round(all_km * co2, 2)},
        "saved_km": round(all_km - km, 3),
        "saved_co2_kg": round((all_km - km) * co2, 2),
        "co2_kg_per_km": co2,
        "solver": {
            "name": plan.solver,
            "seconds": plan.seconds,
            "time_limit_s": limit,
            "nearest_neighbour_km": round(plan.nearest_neighbour_m / 1000, 3),
            "road_detour": detour,
        },
    }
    return DayPlan(
        ask=ask,
        bins=len(served),
        every_bins=len(every),
        unserved=len(unserved),
        km=km,
        every_bin_km=all_km,
        answer=answer,
    )


def _stop(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "name", "lat", "lon", "level_pct", "full_at")}


def is_town_plan(plan: DayPlan, settings: WasteSettings, *, today: date) -> bool:
    """Whether `plan` is the town's own plan of a round day (today's, from its depot, with its
    trucks and shifts, every due bin served): the one the report compares."""
    if settings.depot is None or today.weekday() not in settings.round_weekdays:
        return False
    return plan.unserved == 0 and plan.ask == ask_for(settings, day=today)


async def record(pool: Pool, settings: WasteSettings, plan: DayPlan) -> bool:
    """Keep the day's plan unless one is kept already (the first of the day is the round's);
    whether this one was."""
    async with pool.connection() as conn:
        return await db.save_plan(
            conn,
            day=plan.ask.day,
            bins=plan.bins,
            every_bins=plan.every_bins,
            vehicles=plan.ask.vehicles,
            km=plan.km,
            every_bin_km=plan.every_bin_km,
            fixed_visits_per_week=settings.fixed_visits_per_week,
            rounds_per_week=len(set(settings.round_weekdays)),
        )


async def record_due_plan(pool: Pool, settings: WasteSettings, *, now: datetime) -> Outcome:
    """Record today's plan if it is due and not recorded yet. Returns what happened: "saved",
    "recorded" (already), "not_due", "no_depot" or "unserved" (the town's trucks cannot take
    every due bin: not the town's plan, logged, not recorded)."""
    tz = town_tz(settings)
    day = due_day(now, weekdays=settings.round_weekdays, hour=settings.round_hour, tz=tz)
    if day is None:
        return "not_due"
    if settings.depot is None:
        return "no_depot"
    async with pool.connection() as conn:
        if await db.has_plan(conn, day=day):
            return "recorded"
    plan = await compute(pool, settings, ask_for(settings, day=day))
    if plan.unserved:
        log.warning(
            "plan of %s not recorded: %d due bins do not fit in the town's %d truck(s)",
            day,
            plan.unserved,
            plan.ask.vehicles,
        )
        return "unserved"
    saved = await record(pool, settings, plan)
    if saved:
        log.info("plan of %s recorded: %.1f km, %d bins", day, plan.km, plan.bins)
    return "saved" if saved else "recorded"


async def daily_plans(
    pool: Pool,
    settings: WasteSettings,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Forever: record each round day's plan at its round hour (a supervised task)."""
    if settings.depot is None:
        log.info("no depot configured (TOWNPULSE_DEPOT): the day's plans are not recorded")
    tz = town_tz(settings)
    done: date | None = None  # a day tried and left unrecorded (unserved) is not retried
    while True:
        now = clock()
        try:
            if settings.depot is not None and done != now.astimezone(tz).date():
                outcome = await record_due_plan(pool, settings, now=now)
                if outcome == "unserved":
                    done = now.astimezone(tz).date()
        except (psycopg.Error, OSError) as e:
            # The database is away: try again shortly, the round day is not over.
            log.warning("recording the day's plan failed (%s); retrying", e)
            await asyncio.sleep(RETRY_S)
            continue
        wake = next_wake(now, weekdays=settings.round_weekdays, hour=settings.round_hour, tz=tz)
        await asyncio.sleep(min(max((wake - clock()).total_seconds(), 1.0), RECHECK_S))
