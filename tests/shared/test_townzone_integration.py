"""A town whose days are not Paris's: Tokyo (UTC+9, so its midnight is 15:00 UTC and 16:00 or
17:00 in Paris), on the stack's real database server, in a database of its own.

The stack that CI runs is a Paris town; these tests need no second stack: they migrate a scratch
database for Tokyo and run the real routes of the operator API and the energy service in-process
with Tokyo's settings against it. Every expected figure is computed here from the readings
written, by the town's local date in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from psycopg import AsyncConnection
from pydantic import SecretStr

from services.api.app import create_app as create_api
from services.api.routes import devices, opendata
from services.api.settings import ApiSettings
from services.energy import routes as energy_routes
from services.energy.settings import EnergySettings
from services.storage.adapters.writer import Writer
from services.traffic import routes as traffic_routes
from services.traffic.settings import TrafficSettings
from shared import retention
from shared.auth import Role
from shared.db import create_pool, migrate
from shared.http import Principal, require_viewer
from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from shared.townzone import RollupZoneMismatch, check_rollup_zone
from tests.data_rows import connect, scratch_database
from townpulse.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.plain_postgres]

ZONE = "Asia/Tokyo"
TZ = ZoneInfo(ZONE)
# A day of the town three days back: within real-time aggregation (nothing materialised yet).
DAY = (datetime.now(TZ) - timedelta(days=3)).date()
MIDNIGHT = datetime.combine(DAY + timedelta(days=1), time(), TZ)  # Tokyo's, 15:00 UTC
# Either side of Tokyo's midnight, and of UTC's and Paris's the day after: powers of two, so a
# sum tells which readings it holds.
READINGS = [
    (MIDNIGHT - timedelta(hours=10), 1.0),
    (MIDNIGHT - timedelta(minutes=30), 2.0),
    (MIDNIGHT + timedelta(minutes=30), 4.0),
    (MIDNIGHT + timedelta(hours=9, minutes=30), 8.0),  # 00:30 UTC
]


def by_day(zone: ZoneInfo) -> dict[date, list[float]]:
    days: dict[date, list[float]] = defaultdict(list)
    for ts, value in READINGS:
        days[ts.astimezone(zone).date()].append(value)
    return dict(days)


EXPECTED = by_day(TZ)


def test_the_readings_split_differently_in_tokyo_than_in_utc_or_paris() -> None:
    # Else the tests below could not tell one zone's days from another's.
    assert {DAY: [1.0, 2.0], DAY + timedelta(days=1): [4.0, 8.0]} == EXPECTED
    assert by_day(ZoneInfo("UTC")) != EXPECTED
    assert by_day(ZoneInfo("Europe/Paris")) != EXPECTED


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), TZ)


_ACL = """
SELECT r.rolname, a.privilege_type
FROM pg_class c, aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = %s::regclass AND a.grantee <> c.relowner ORDER BY 1, 2
"""


async def rollup_shape(conn: AsyncConnection[Any]) -> dict[str, Any]:
    """The daily rollup's grants, policies and real-time setting: what a rebuild must keep."""
    view = await conn.execute(_ACL, ("readings_daily",))
    shape: dict[str, Any] = {"view": await view.fetchall()}
    if await retention.backend(conn) != "timescaledb":  # a table
        return shape
    cur = await conn.execute(
        "SELECT format('%I.%I', materialization_hypertable_schema,"
        " materialization_hypertable_name) AS mat, materialized_only, view_definition"
        " FROM timescaledb_information.continuous_aggregates WHERE view_name = 'readings_daily'"
    )
    cagg = await cur.fetchone()
    assert cagg is not None
    shape["materialization"] = await (await conn.execute(_ACL, (cagg["mat"],))).fetchall()
    shape["materialized_only"] = cagg["materialized_only"]
    jobs = await conn.execute(
        "SELECT proc_name, schedule_interval, config - 'mat_hypertable_id' - 'hypertable_id'"
        " AS config FROM timescaledb_information.jobs"
        " WHERE hypertable_name IN ('readings_daily', %s) ORDER BY proc_name",
        (cagg["mat"].split(".", 1)[1].strip('"'),),
    )
    shape["jobs"] = await jobs.fetchall()
    shape["zone_in_definition"] = [
        z for z in (ZONE, "Europe/Paris") if z in cagg["view_definition"]
    ]
    return shape


@pytest.fixture(params=[False, True], ids=["server-backend", "plain-postgres"])
async def tokyo(request: pytest.FixtureRequest, stack: Stack) -> AsyncIterator[str]:
    """A database made for Paris (as 0001 builds it), given a retention policy on its daily
    rollup, then migrated again for Tokyo before any reading: the rollup rebuilt in Tokyo."""
    async with scratch_database(stack, plain=request.param, timezone="Europe/Paris") as url:
        async with await connect(url) as conn:
            before = await rollup_shape(conn)
            if "jobs" in before:
                await conn.execute(
                    "SELECT add_retention_policy('readings_daily',"
                    " drop_after => interval '3650 days')"
                )
                before = await rollup_shape(conn)
                assert before["zone_in_definition"] == ["Europe/Paris"]
                assert {j["proc_name"] for j in before["jobs"]} == {
                    "policy_refresh_continuous_aggregate",
                    "policy_retention",
                }
            assert before["view"], "the services' grants on readings_daily"
        migrate(url, timezone=ZONE)
        async with await connect(url) as conn:
            after = await rollup_shape(conn)
            if "jobs" in after:
                assert after.pop("zone_in_definition") == [ZONE]
                before.pop("zone_in_definition")
            assert after == before
            cur = await conn.execute("SELECT value FROM storage_info WHERE key = 'timezone'")
            assert (await cur.fetchone())["value"] == ZONE  # type: ignore[index]
        yield url


async def write_readings(url: str, device_id: str) -> None:
    """READINGS of a town hall's meter: raw, in the rollups and as the energy model's scores."""
    async with await connect(url) as conn:
        backend = (
            await (
                await conn.execute("SELECT value FROM storage_info WHERE key = 'backend'")
            ).fetchone()
        )["value"]  # type: ignore[index]
        await conn.execute(
            "INSERT INTO devices (id, domain, name, metadata)"
            " VALUES (%s, 'energy', 'town hall', '{\"building_type\": \"town_hall\"}')",
            (device_id,),
        )
        batch = ReadingBatch(
            device_id=device_id,
            domain=Domain.ENERGY,
            received_at=datetime.now(UTC),
            readings=[Reading(ts=ts, metric="energy_kwh", value=v) for ts, v in READINGS],
        )
        # As the storage service of a Tokyo town writes them (the rollup too, on plain PostgreSQL).
        async with conn.transaction():
            await Writer(maintain_rollups=backend == "postgres", timezone=ZONE).write(
                conn, batches=[batch], deadletters=[]
            )
        for ts, v in READINGS:
            await conn.execute(
                "INSERT INTO energy_scores (device_id, ts, observed, expected, lower, upper,"
                " score, is_anomaly) VALUES (%s, %s, %s, 0, 0, 0, 0, false)",
                (device_id, ts, v),
            )


@asynccontextmanager
async def serve(url: str, router: APIRouter, settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """`router` as its service serves it, with `settings`, on `url`'s database (keys aside)."""
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[require_viewer] = lambda: Principal(key_id="t", role=Role.VIEWER)
    pool = create_pool(SecretStr(url))
    await pool.open()
    app.state.pool, app.state.settings = pool, settings
    # The operator API's client of its upstream services (its open-data routes take it).
    app.state.http = upstream = httpx.AsyncClient()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://town"
        ) as client:
            yield client
    finally:
        await upstream.aclose()
        await pool.close()


def day_items(items: list[dict[str, Any]], key: str) -> dict[date, Any]:
    """Each bucket's figure by the town's date, checking that buckets start at its midnight."""
    out = {}
    for item in items:
        start = datetime.fromisoformat(item["bucket"])
        assert start == midnight(start.astimezone(TZ).date()), item
        out[start.astimezone(TZ).date()] = item[key]
    return out


async def test_a_devices_daily_readings_are_the_towns_days(tokyo: str) -> None:
    await write_readings(tokyo, "meter-tokyo")
    settings = ApiSettings(dev_mode=True, timezone=ZONE, database_url=SecretStr(tokyo))
    async with serve(tokyo, devices.router, settings) as client:
        # From 23:00 on DAY, Tokyo time: the whole of DAY is in (days are whole).
        r = await client.get(
            "/v1/devices/meter-tokyo/readings",
            params={
                "bucket": "1d",
                "metric": "energy_kwh",
                "start": (MIDNIGHT - timedelta(hours=1)).isoformat(),
                "end": (MIDNIGHT + timedelta(days=1)).isoformat(),
            },
        )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert day_items(items, "count") == {d: len(v) for d, v in EXPECTED.items()}
    sums = {d: i["avg"] * i["count"] for d, i in zip(day_items(items, "count"), items, strict=True)}
    assert sums == pytest.approx({d: sum(v) for d, v in EXPECTED.items()})
    assert day_items(items, "max") == {d: max(v) for d, v in EXPECTED.items()}


async def test_the_energy_day_summary_and_daily_consumption_are_the_towns_days(
    tokyo: str,
) -> None:
    await write_readings(tokyo, "meter-tokyo")
    settings = EnergySettings(dev_mode=True, timezone=ZONE, database_url=SecretStr(tokyo))
    async with serve(tokyo, energy_routes.router, settings) as client:
        for day, values in EXPECTED.items():
            r = await client.get("/v1/energy/summary", params={"day": day.isoformat()})
            assert r.status_code == 200, r.text
            assert (r.json()["total_kwh"], r.json()["meters"]) == (sum(values), 1)
        r = await client.get(
            "/v1/energy/meters/meter-tokyo/consumption",
            params={
                "bucket": "1d",
                "start": midnight(DAY).isoformat(),
                "end": midnight(DAY + timedelta(days=2)).isoformat(),
            },
        )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert day_items(items, "observed_kwh") == {d: sum(v) for d, v in EXPECTED.items()}


async def test_the_open_data_days_are_the_towns_days(tokyo: str) -> None:
    # Two town halls: the dataset's floor is two buildings of a type.
    for meter in ("meter-tokyo", "meter-tokyo-2"):
        await write_readings(tokyo, meter)
    async with await connect(tokyo) as conn:
        await conn.execute(
            "INSERT INTO open_data_publications (dataset, licence, published_by)"
            " VALUES ('energy-daily-public-buildings', 'etalab-2.0', 'test')"
        )
    settings = ApiSettings(
        dev_mode=True, timezone=ZONE, database_url=SecretStr(tokyo), open_data_min_devices=2
    )
    async with serve(tokyo, opendata.public_router, settings) as client:
        r = await client.get(
            "/open-data/energy-daily-public-buildings.json",
            params={
                "start": midnight(DAY).isoformat(),
                "end": midnight(DAY + timedelta(days=2)).isoformat(),
            },
        )
    assert r.status_code == 200, r.text
    rows = {date.fromisoformat(i["day"]): (i["buildings"], i["kwh"]) for i in r.json()["items"]}
    assert rows == {d: (2, 2 * sum(v)) for d, v in EXPECTED.items()}


async def test_traffic_days_are_the_towns_days(tokyo: str) -> None:
    # A flow is stamped at the end of its interval: one stamped at midnight is the day before's.
    flows = [*READINGS, (MIDNIGHT, 16.0)]
    async with await connect(tokyo) as conn:
        for ts, v in flows:
            await conn.execute(
                "INSERT INTO traffic_flows (device_id, ts, vehicles, expected, lower, upper,"
                " score, is_anomaly) VALUES ('counter-tokyo', %s, %s, 0, 0, 0, 0, false)",
                (ts, v),
            )
    expected: dict[date, float] = defaultdict(float)
    for ts, v in flows:
        expected[(ts - timedelta(microseconds=1)).astimezone(TZ).date()] += v
    settings = TrafficSettings(dev_mode=True, timezone=ZONE, database_url=SecretStr(tokyo))
    async with serve(tokyo, traffic_routes.router, settings) as client:
        r = await client.get(
            "/v1/traffic/counters/counter-tokyo/flow",
            params={
                "bucket": "1d",
                "start": midnight(DAY).isoformat(),
                "end": midnight(DAY + timedelta(days=2)).isoformat(),
            },
        )
    assert r.status_code == 200, r.text
    assert day_items(r.json()["items"], "vehicles") == dict(expected)
    assert expected[DAY] == 1 + 2 + 16


async def test_a_setting_that_disagrees_with_the_database_stops_the_start(tokyo: str) -> None:
    await write_readings(tokyo, "meter-tokyo")
    url = SecretStr(tokyo)
    await check_rollup_zone(url, ZONE)
    with pytest.raises(RollupZoneMismatch, match="holds days of 'Asia/Tokyo'"):
        await check_rollup_zone(url, "Europe/Paris")
    # The migration at `townpulse up`, with readings there: refused, nothing rebuilt.
    with pytest.raises(RollupZoneMismatch, match="TOWNPULSE_TIMEZONE is 'Europe/Paris'"):
        migrate(tokyo, timezone="Europe/Paris")
    # The operator API refuses to start before it serves anything.
    app = create_api(ApiSettings(dev_mode=True, timezone="Europe/Paris", database_url=url))
    with pytest.raises(RollupZoneMismatch):
        async with app.router.lifespan_context(app):
            pass
    async with await connect(tokyo) as conn:
        cur = await conn.execute("SELECT value FROM storage_info WHERE key = 'timezone'")
        assert (await cur.fetchone())["value"] == ZONE  # type: ignore[index]


def test_postgresql_must_know_the_zone_too(stack: Stack) -> None:
    # A name Python's tz database knows but the server's may not is checked there as well:
    # an unknown one never reaches a view definition.
    with pytest.raises(ValueError, match="unknown time zone"):
        migrate(stack.database_url(), timezone="Mars/Olympus_Mons")


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The settings above are Tokyo's whatever the shell running the tests says.
    monkeypatch.delenv("TOWNPULSE_TIMEZONE", raising=False)
    yield
