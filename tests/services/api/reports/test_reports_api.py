"""The report against the running stack and its simulated town: every figure reconciled with
the database, the PDF's text, both languages, the webhook event, the archive, bad periods.

Each figure is recomputed here from the rows themselves (fetched and summed in Python), not
with the report's queries: a wrong filter or join in a query shows as a difference.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pypdf
import pytest

from services.api.reports.text import number, word
from shared.factors import load_factors
from shared.footprint import footprint_for
from testing.webhook_receiver import WebhookReceiver
from tests.data_rows import connect
from tests.support import wait_for
from tests.waste_support import record_today
from townpulse.simulator.runner import RunnerConfig, run
from townpulse.simulator.town import build_town
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Europe/Paris")  # the stack's TOWNPULSE_TIMEZONE (the default)
# The report rounds each figure to 0.1 (kWh, km, kg, h); sums of rounded rows drift a little.
TOLERANCE = 0.051


def bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(start, time(), TZ).astimezone(UTC),
        datetime.combine(end, time(), TZ).astimezone(UTC),
    )


async def rows(stack: Stack, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with await connect(stack.database_url()) as conn:
        return await (await conn.execute(sql, args)).fetchall()


def q(stack: Stack, sql: str, *args: Any) -> list[dict[str, Any]]:
    return asyncio.run(rows(stack, sql, *args))


def text_of(pdf: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture(scope="module")
def today() -> date:
    return datetime.now(TZ).date()


# A small town of this module's own, published through the real ingest path: the suite's stack
# runs without the simulator (`make test` starts it with --no-sim).
TOWN: dict[str, Any] = {
    "energy": 4,
    "waste": 8,
    "traffic": 2,
    "lighting": 3,
    "seed": 26,
    "lorawan_bins": 0.0,
    "lorawan_meters": 0.0,
}
SETTLED_POLLS = 3


@pytest.fixture(scope="module")
def history(
    stack: Stack, stack_env: dict[str, str], admin_key: str, today: date, tmp_path_factory: Any
) -> Iterator[tuple[date, date]]:
    """The last two whole days of a simulated town made for this module, once every service
    has processed them: the readings, the energy scores, the bins' levels and collections and
    the traffic flows stop changing (a report of an ended period is archived once, so it must
    not be made while a domain is still catching up)."""
    start, end = today - timedelta(days=2), today
    prefix = f"rp{uuid.uuid4().hex[:6]}-"
    backfill = datetime.now(UTC) - datetime.combine(start, time(), TZ) + timedelta(hours=1)
    stats = run(
        RunnerConfig(
            api_url=stack_env["API_URL"],
            api_key=admin_key,
            run_dir=tmp_path_factory.mktemp("town"),
            mqtt_host=stack_env["MQTT_HOST"],
            mqtt_port=int(stack_env["MQTT_PORT"]),
            speed=1e9,
            backfill=backfill,
            duration=backfill,
            id_prefix=prefix,
            **TOWN,
        )
    )
    assert stats.published > 0
    like = prefix + "%"
    counts = (
        "SELECT (SELECT count(*) FROM readings WHERE device_id LIKE %(p)s) AS readings,"
        " (SELECT count(*) FROM energy_scores WHERE device_id LIKE %(p)s) AS scores,"
        " (SELECT count(*) FROM waste_levels WHERE device_id LIKE %(p)s) AS levels,"
        " (SELECT count(*) FROM waste_collections WHERE device_id LIKE %(p)s) AS collections,"
        " (SELECT count(*) FROM traffic_flows WHERE device_id LIKE %(p)s) AS flows,"
        " (SELECT count(*) FROM lighting_readings WHERE device_id LIKE %(p)s) AS lighting"
    )
    seen: list[dict[str, Any]] = []

    def settled() -> bool:
        [now] = asyncio.run(_counts(stack, counts, like))
        seen.append(now)
        last = seen[-SETTLED_POLLS:]
        return (
            len(last) == SETTLED_POLLS
            and all(c == last[0] for c in last)
            and all(v > 0 for k, v in now.items() if k != "collections")
        )

    wait_for(settled, timeout=600, interval=3, what="every service to process the town")
    # A report of an ended period is archived and given back as it was: one made by an earlier
    # run of this module on the same stack would hold that run's town.
    asyncio.run(_execute(stack, "DELETE FROM reports WHERE period_start = %s", start))
    yield start, end
    town_ids = [d.id for d in build_town(**TOWN, id_prefix=prefix)]
    with httpx.Client(
        base_url=stack_env["API_URL"], headers={"Authorization": f"Bearer {admin_key}"}
    ) as admin:
        for device_id in town_ids:
            admin.delete(f"/v1/devices/{device_id}", params={"erase": "true"})


async def _execute(stack: Stack, sql: str, *args: Any) -> None:
    async with await connect(stack.database_url()) as conn:
        await conn.execute(sql, args)


async def _counts(stack: Stack, sql: str, like: str) -> list[dict[str, Any]]:
    async with await connect(stack.database_url()) as conn:
        return await (await conn.execute(sql, {"p": like})).fetchall()


def report(api: httpx.Client, start: date, end: date, lang: str) -> dict[str, Any]:
    r = api.post("/v1/reports", json={"start": str(start), "end": str(end), "lang": lang})
    assert r.status_code in (200, 201), r.text
    full = api.get(f"/v1/reports/{r.json()['id']}")
    assert full.status_code == 200, full.text
    return dict(full.json())


def test_every_figure_reconciles_with_the_database(
    api: httpx.Client, stack: Stack, history: tuple[date, date]
) -> None:
    start, end = history
    got = report(api, start, end, "en")
    f = got["figures"]
    lo, hi = bounds(start, end)
    factors = load_factors()
    assert f["factors_version"] == factors.version == got["factors_version"]

    # Energy: per meter, consumed and expected; excess over the flagged readings.
    scores = q(
        stack,
        "SELECT device_id, observed, expected, is_anomaly FROM energy_scores"
        " WHERE ts >= %s AND ts < %s",
        lo,
        hi,
    )
    assert scores, "the simulated town has energy readings in its history"
    consumed: dict[str, float] = defaultdict(float)
    expected: dict[str, float] = defaultdict(float)
    excess: dict[str, float] = defaultdict(float)
    for s in scores:
        consumed[s["device_id"]] += s["observed"]
        expected[s["device_id"]] += s["expected"]
        if s["is_anomaly"]:
            excess[s["device_id"]] += max(s["observed"] - s["expected"], 0.0)
    e = f["energy"]
    assert {b["device_id"] for b in e["buildings"]} == set(consumed)
    for b in e["buildings"]:
        assert b["consumed_kwh"] == pytest.approx(consumed[b["device_id"]], abs=TOLERANCE)
        assert b["expected_kwh"] == pytest.approx(expected[b["device_id"]], abs=TOLERANCE)
    assert e["consumed_kwh"] == pytest.approx(sum(consumed.values()), abs=TOLERANCE)
    assert e["expected_kwh"] == pytest.approx(sum(expected.values()), abs=TOLERANCE)
    total_excess = sum(excess.values())
    assert e["excess_kwh"] == pytest.approx(total_excess, abs=TOLERANCE)
    tariff = factors["electricity_eur_per_kwh"].value
    assert e["excess_cost_eur"] == pytest.approx(total_excess * tariff, abs=0.006)
    episodes = q(stack, "SELECT device_id, started_at FROM energy_episodes")
    started = Counter(r["device_id"] for r in episodes if lo <= r["started_at"] < hi)
    assert e["anomalies"] == sum(started.values())
    assert e["confirmed"] is None
    top = sorted(((v, d) for d, v in excess.items() if v > 0), key=lambda x: (-x[0], x[1]))[:5]
    assert [t["device_id"] for t in e["top"]] == [d for _, d in top]
    assert [t["episodes"] for t in e["top"]] == [started[d] for _, d in top]

    # Waste: the recorded plans against the fixed schedule, and the collections the sensors saw.
    w = f["waste"]
    check_waste_plans(
        w, q(stack, "SELECT * FROM waste_plans WHERE day >= %s AND day < %s", start, end)
    )
    collections = q(
        stack, "SELECT level_before FROM waste_collections WHERE ts >= %s AND ts < %s", lo, hi
    )
    assert w["collections"] == len(collections)
    assert w["overflows"] == sum(1 for c in collections if c["level_before"] >= 100.0)
    assert w["low_fill"] == sum(1 for c in collections if c["level_before"] < 50.0)

    # Traffic: incidents and congestion hours per counter, this period and the one before.
    def per_counter(a: datetime, b: datetime) -> dict[str, tuple[int, float]]:
        out: dict[str, tuple[int, float]] = {}
        for r in q(stack, "SELECT device_id, kind, started_at, ended_at FROM traffic_episodes"):
            if not a <= r["started_at"] < b:
                continue
            n, h = out.get(r["device_id"], (0, 0.0))
            if r["kind"] == "traffic.incident":
                n += 1
            if r["kind"] == "traffic.congestion":
                until = min(r["ended_at"] or b, b)
                h += max((until - r["started_at"]).total_seconds(), 0.0) / 3600
            out[r["device_id"]] = (n, h)
        return out

    now_, before = per_counter(lo, hi), per_counter(*bounds(start - (end - start), start))
    t = f["traffic"]
    assert {c["device_id"] for c in t["counters"]} == set(now_) | set(before)
    for c in t["counters"]:
        n, h = now_.get(c["device_id"], (0, 0.0))
        pn, ph = before.get(c["device_id"], (0, 0.0))
        assert (c["incidents"], c["incidents_previous"]) == (n, pn)
        assert c["congestion_h"] == pytest.approx(h, abs=TOLERANCE)
        assert c["congestion_h_previous"] == pytest.approx(ph, abs=TOLERANCE)
    assert t["incidents"] == sum(n for n, _ in now_.values())

    # Data quality: silent sensors, dead letters by reason, links, alerts.
    devices = q(stack, "SELECT id, created_at, deleted_at FROM devices")
    registered = {
        d["id"]
        for d in devices
        if d["created_at"] < hi and (d["deleted_at"] is None or d["deleted_at"] >= hi)
    }
    heard = {
        r["device_id"]
        for r in q(
            stack, "SELECT DISTINCT device_id FROM readings WHERE ts >= %s AND ts < %s", lo, hi
        )
    }
    qa = f["quality"]
    assert qa["devices"] == len(registered)
    assert qa["silent"] == len(registered - heard)
    letters = Counter(
        r["reason"]
        for r in q(
            stack,
            "SELECT reason FROM deadletters WHERE received_at >= %s AND received_at < %s",
            lo,
            hi,
        )
    )
    assert qa["deadletters_by_reason"] == dict(letters)
    assert qa["deadletters"] == sum(letters.values())
    alerts = q(stack, "SELECT opened_at, acknowledged_at FROM alerts")
    opened = [a for a in alerts if a["opened_at"] is not None and lo <= a["opened_at"] < hi]
    assert qa["alerts_opened"] == len(opened)

    # The balance: the rounds' savings at the truck's factor.
    truck = factors["refuse_truck_kg_co2e_per_km"].value
    assert w["saved_co2e_kg"] == pytest.approx(w["saved_km"] * truck, abs=0.1)
    assert f["balance"]["avoided_kg"] == w["saved_co2e_kg"]
    grid = factors["grid_kg_co2e_per_kwh"].value
    assert f["balance"]["energy_waste_kg"] == pytest.approx(total_excess * grid, abs=0.1)

    # The PDF prints these figures.
    pdf = api.get(got["pdf_url"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = text_of(pdf.content)
    for value, digits in (
        (e["consumed_kwh"], 1),
        (e["excess_kwh"], 1),
        (e["excess_cost_eur"], 2),
        (t["incidents"], 0),
        (qa["deadletters"], 0),
        (w["collections"], 0),
    ):
        assert number(value, "en", digits=digits) in text, (value, digits)


def fixed_schedule(plans: list[dict[str, Any]]) -> dict[str, float]:
    """The report's comparison worked out here, day by day: each recorded round day is 1/r of
    a week; over it the fixed schedule drives v/r tours of every bin."""
    weeks = fixed = fixed_visits = planned = 0.0
    for p in plans:
        week_share = 1 / p["rounds_per_week"]
        weeks += week_share
        fixed += p["every_bin_km"] * p["fixed_visits_per_week"] * week_share
        fixed_visits += p["every_bins"] * p["fixed_visits_per_week"] * week_share
        planned += p["km"]
    return {"weeks": weeks, "fixed": fixed, "fixed_visits": fixed_visits, "planned": planned}


def check_waste_plans(w: dict[str, Any], plans: list[dict[str, Any]]) -> None:
    expected = fixed_schedule(plans)
    factors = load_factors()
    saved = expected["fixed"] - expected["planned"]
    assert w["plan_days"] == len(plans)
    assert w["weeks"] == pytest.approx(expected["weeks"], abs=0.006)
    assert w["planned_km"] == pytest.approx(expected["planned"], abs=TOLERANCE)
    assert w["fixed_km"] == pytest.approx(expected["fixed"], abs=TOLERANCE)
    assert w["fixed_visits"] == pytest.approx(expected["fixed_visits"], abs=0.5)
    assert w["planned_visits"] == sum(p["bins"] for p in plans)
    tours = [p["every_bin_km"] for p in plans]
    assert w["every_bin_tour_km"] == pytest.approx(
        sum(tours) / len(tours) if tours else 0.0, abs=TOLERANCE
    )
    assert w["saved_km"] == pytest.approx(saved, abs=TOLERANCE)
    fuel = factors["refuse_truck_fuel_l_per_km"].value
    assert w["saved_fuel_l"] == pytest.approx(saved * fuel, abs=TOLERANCE)
    truck = factors["refuse_truck_kg_co2e_per_km"].value
    assert w["saved_co2e_kg"] == pytest.approx(saved * truck, abs=TOLERANCE)


def test_the_recorded_plans_are_compared_with_the_fixed_schedule(
    api: httpx.Client, stack: Stack, today: date, history: tuple[date, date]
) -> None:
    """The waste service records each round day's plan itself (tests/services/waste/
    test_daily_plans.py); a report of the week to today compares them with the fixed schedule
    recorded with them."""
    start = today - timedelta(days=6)
    # Today's plan recorded afresh, as the service's task records it, with this module's town
    # on the map (a plan recorded earlier today may predate any located bin).
    asyncio.run(_execute(stack, "DELETE FROM waste_plans WHERE day = %s", today))
    asyncio.run(_execute(stack, "DELETE FROM reports WHERE period_start = %s", start))
    asyncio.run(record_today(stack.database_url()))
    plans = q(
        stack,
        "SELECT * FROM waste_plans WHERE day >= %s AND day < %s",
        start,
        today + timedelta(days=1),
    )
    got = report(api, start, today + timedelta(days=1), "fr")
    w = got["figures"]["waste"]
    check_waste_plans(w, plans)
    assert w["fixed_km"] > 0 and w["plan_days"] >= 1
    text = text_of(api.get(got["pdf_url"]).content)
    assert number(w["fixed_km"], "fr") in text and number(w["saved_km"], "fr") in text


def test_the_lighting_section_reconciles_with_its_readings_and_the_lighting_service(
    api: httpx.Client, stack: Stack, history: tuple[date, date]
) -> None:
    start, end = history
    en, fr = (report(api, start, end, lang) for lang in ("en", "fr"))
    li = en["figures"]["lighting"]
    assert fr["figures"]["lighting"] == li
    lo, hi = bounds(start, end)
    readings = q(
        stack,
        "SELECT device_id, energy_kwh, baseline_kwh FROM lighting_readings"
        " WHERE ts >= %s AND ts < %s",
        lo,
        hi,
    )
    assert readings, "the simulated town's cabinets have readings in its history"
    used: dict[str, float] = defaultdict(float)
    saved: dict[str, float] = defaultdict(float)
    for row in readings:
        used[row["device_id"]] += row["energy_kwh"] or 0.0
        if row["baseline_kwh"] is not None:
            saved[row["device_id"]] += row["baseline_kwh"] - (row["energy_kwh"] or 0.0)
    assert li["circuits"] == len(used) == len(li["cabinets"])
    assert li["used_kwh"] == pytest.approx(sum(used.values()), abs=TOLERANCE)
    assert li["saved_kwh"] == pytest.approx(sum(saved.values()), abs=TOLERANCE)
    for c in li["cabinets"]:
        assert c["used_kwh"] == pytest.approx(used[c["device_id"]], abs=TOLERANCE)
        assert c["saved_kwh"] == pytest.approx(saved[c["device_id"]], abs=TOLERANCE)
    factors = load_factors()
    tariff, grid = (factors[k].value for k in ("electricity_eur_per_kwh", "grid_kg_co2e_per_kwh"))
    assert li["saved_eur"] == pytest.approx(sum(saved.values()) * tariff, abs=0.006)
    assert li["saved_co2e_kg"] == pytest.approx(sum(saved.values()) * grid, abs=TOLERANCE)
    # The lighting service's own savings over the same period say the same.
    r = api.get("/v1/lighting/savings", params={"start": lo.isoformat(), "end": hi.isoformat()})
    assert r.status_code == 200, r.text
    own = r.json()
    assert li["saved_kwh"] == pytest.approx(own["saved_kwh"], abs=TOLERANCE)
    assert li["all_night_kwh"] == pytest.approx(own["all_night_kwh"], abs=TOLERANCE)
    # Both languages print the section with its figures.
    for got, lang in ((en, "en"), (fr, "fr")):
        text = text_of(api.get(got["pdf_url"]).content)
        assert word("lighting", lang) in text
        assert number(li["saved_kwh"], lang) in text


def test_french_and_english_and_the_archive(api: httpx.Client, history: tuple[date, date]) -> None:
    start, end = history
    fr, en = (report(api, start, end, lang) for lang in ("fr", "en"))
    assert fr["id"] != en["id"] and fr["sha256"] != en["sha256"]
    fr_text = text_of(api.get(fr["pdf_url"]).content)
    en_text = text_of(api.get(en["pdf_url"]).content)
    assert word("title", "fr") in fr_text and word("title", "en") not in fr_text
    assert word("title", "en") in en_text
    kwh = fr["figures"]["energy"]["consumed_kwh"]
    assert number(kwh, "fr") in fr_text and number(kwh, "en") in en_text
    # A final report is archived once: asked again, the same document.
    again = api.post("/v1/reports", json={"start": str(start), "end": str(end), "lang": "fr"})
    assert again.status_code == 200 and again.json()["sha256"] == fr["sha256"]
    listed = {r["id"]: r for r in api.get("/v1/reports").json()}
    assert listed[fr["id"]]["sha256"] == fr["sha256"]
    assert hashlib.sha256(api.get(fr["pdf_url"]).content).hexdigest() == fr["sha256"]


def test_a_report_is_announced_to_the_webhooks_that_asked(
    api: httpx.Client,
    subscriber: Callable[..., dict],
    today: date,
) -> None:
    receiver = WebhookReceiver()
    try:
        receiver.listen()
        sub = subscriber(receiver.url, event_types=["report.published"])
        receiver.secret = sub["secret"]
        # Today's report is provisional: made (and announced) again on each request.
        made = report(api, today, today + timedelta(days=1), "en")
        wait_for(lambda: receiver.delivered(), timeout=30, what="the report's event")
        bodies = list(receiver.delivered().values())
        [event] = [b for b in bodies if b["data"]["sha256"] == made["sha256"]]
        assert event["type"] == "report.published"
        assert event["data"]["download_url"].endswith(f"/v1/reports/{made['id']}/pdf")
        assert all(r.verified for r in receiver.requests)
    finally:
        receiver.close()


def test_the_platform_footprint_and_the_balance(
    api: httpx.Client, stack: Stack, today: date
) -> None:
    """The report's footprint is the sampler's (shared/footprint.py, tested against /proc) over
    the period, as it stood when the report was made; the balance subtracts it."""
    lo, _ = bounds(today, today + timedelta(days=1))

    def sampled() -> bool:
        [r] = q(stack, "SELECT count(DISTINCT ts) AS n FROM platform_footprint WHERE ts >= %s", lo)
        return bool(r["n"] >= 2)

    wait_for(sampled, timeout=300, what="two footprint samples today")
    got = report(api, today, today + timedelta(days=1), "en")
    made_at = datetime.fromisoformat(got["generated_at"])
    fp, b = got["figures"]["footprint"], got["figures"]["balance"]
    assert fp is not None

    async def direct(end: datetime) -> float:
        async with await connect(stack.database_url()) as conn:
            f = await footprint_for(conn, start=lo, end=end, factors=load_factors())
        return f.kg_co2e_total

    # Samples keep coming: the report's total lies between what was stored just before it was
    # made and what is stored now.
    before = asyncio.run(direct(made_at - timedelta(minutes=2)))
    after = asyncio.run(direct(datetime.now(UTC)))
    assert before - 0.001 <= fp["kg_co2e_total"] <= after + 0.001
    stored = {r["component"] for r in q(stack, "SELECT DISTINCT component FROM platform_footprint")}
    assert fp["components"] and {c["name"] for c in fp["components"]} <= stored
    assert b["platform_kg"] == pytest.approx(fp["kg_co2e_total"], abs=0.051)
    assert b["net_kg"] == pytest.approx(b["avoided_kg"] - fp["kg_co2e_total"], abs=0.051)
    text = text_of(api.get(got["pdf_url"]).content)
    assert number(fp["kg_co2e_total"], "en", digits=2) in text


def test_last_month_is_archived_once_per_language_when_it_was_measured(
    api: httpx.Client, stack: Stack, today: date
) -> None:
    """The schedule made last month's report in French and English when the API started, if
    the town had readings that month; none otherwise (a fresh install says nothing of a month
    it did not see)."""
    first = today.replace(day=1)
    start = (first - timedelta(days=1)).replace(day=1)
    lo, hi = bounds(start, first)
    [r] = q(stack, "SELECT count(*) AS n FROM readings WHERE ts >= %s AND ts < %s", lo, hi)
    listed = [
        x
        for x in api.get("/v1/reports").json()
        if (x["period_start"], x["period_end"]) == (str(start), str(first))
    ]
    if r["n"] > 0:
        assert sorted(x["lang"] for x in listed) == ["en", "fr"]
        assert all(x["kind"] == "monthly" for x in listed)
    else:
        assert listed == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"start": "2026-03-01", "end": "2026-03-01"}, "before"),
        ({"start": "2024-01-01", "end": "2026-01-01"}, "366"),
        ({"start": "2099-01-01", "end": "2099-02-01"}, "a year from today"),
        ({"start": "2026-01-01", "end": "2026-02-01", "lang": "de"}, "lang"),
        ({"start": "2026-01-01", "end": "2026-02-01", "extra": 1}, "extra"),
    ],
)
def test_bad_periods_are_refused_with_a_reason(
    api: httpx.Client, body: dict[str, Any], reason: str
) -> None:
    r = api.post("/v1/reports", json=body)
    assert r.status_code == 422, r.text
    assert reason in r.text


def test_a_period_not_yet_begun_is_refused(api: httpx.Client, today: date) -> None:
    start = today + timedelta(days=2)
    r = api.post("/v1/reports", json={"start": str(start), "end": str(start + timedelta(days=1))})
    assert r.status_code == 422 and "not begun" in r.text, r.text


def test_unknown_and_malformed_ids(api: httpx.Client) -> None:
    assert api.get("/v1/reports/rp_1999-01-01_1999-02-01_fr").status_code == 404
    assert api.get("/v1/reports/rp_1999-01-01_1999-02-01_fr/pdf").status_code == 404
    assert api.get("/v1/reports/../admin").status_code in (404, 422)
    assert api.get("/v1/reports/x" * 50).status_code in (404, 422)
