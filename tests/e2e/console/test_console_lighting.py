"""The lighting page in Chromium (#25 item 4): cabinets on the plan by their state, tonight's
schedule, the open faults and the savings, each checked against a source of its own (the
almanac, the alerts API, a direct SQL query), in French and in English."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from astral import Observer
from astral.sun import sunrise, sunset

from services.lighting.settings import LightingSettings
from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from testing.alerts_support import event, produce_events, produce_readings
from tests.e2e.console.conftest import Console
from tests.support import wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.e2e

AROUND = (45.90, 6.12)


@pytest.fixture
def cabinets(api: httpx.Client) -> Iterator[dict[str, str]]:
    """Three cabinets of one district a few hundred metres apart; removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    made = {}
    for k, role in enumerate(("lit", "faulty", "quiet")):
        device_id = f"cab-{tag}-{role}"
        body = {
            "id": device_id,
            "domain": "lighting",
            "name": f"Armoire {role}",
            "location": {"lat": AROUND[0] + 0.002 * k, "lon": AROUND[1] + 0.003 * k},
            "metadata": {"district": f"d-{tag}"},
        }
        r = api.post("/v1/devices", json=body)
        assert r.status_code == 201, r.text
        made[role] = device_id
    yield made
    for device_id in made.values():
        api.delete(f"/v1/devices/{device_id}")


def _report(device_id: str, ts: datetime, *, on: bool) -> ReadingBatch:
    watts = 900.0 if on else 0.0
    return ReadingBatch(
        device_id=device_id,
        domain=Domain.LIGHTING,
        received_at=ts,
        readings=[
            Reading(ts=ts, metric="circuit_1_on", value=float(on)),
            Reading(ts=ts, metric="power_w", value=watts),
            Reading(ts=ts, metric="energy_kwh", value=watts * 0.25 / 1000),
            Reading(ts=ts, metric="voltage_v", value=230.0),
        ],
    )


def _tonight(now: datetime, zone: str) -> tuple[datetime, datetime]:
    """The night running or to come at `now`: sunset and sunrise at the service's default
    coordinates, from the almanac directly (not the service's code)."""
    s = LightingSettings(dev_mode=True)
    observer, tz = Observer(latitude=s.town_latitude, longitude=s.town_longitude), ZoneInfo(zone)
    today = now.astimezone(tz).date()
    if now < sunrise(observer, today, tzinfo=tz):
        today -= timedelta(days=1)
    return sunset(observer, today, tzinfo=tz), sunrise(
        observer, today + timedelta(days=1), tzinfo=tz
    )


def test_the_lighting_page_shows_cabinets_schedule_faults_and_savings(
    console: Console,
    admin_key: str,
    api: httpx.Client,
    stack: Stack,
    stack_env: dict[str, str],
    cabinets: dict[str, str],
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    produce_readings(
        stack_env["KAFKA_BOOTSTRAP"],
        [
            _report(cabinets["lit"], now - timedelta(minutes=5), on=True),
            _report(cabinets["faulty"], now - timedelta(minutes=5), on=False),
        ],
    )
    # A lamp failure's episode as the lighting service emits it (its detection is
    # tests/services/lighting/test_lighting_e2e.py's): the page shows what the alerts service
    # holds.
    start = now - timedelta(minutes=30)
    produce_events(
        stack_env["KAFKA_BOOTSTRAP"],
        [
            event(
                cabinets["faulty"],
                "lighting.lamp_failure",
                "start",
                episode_start=start,
                ts=start,
                domain=Domain.LIGHTING,
            )
        ],
    )

    def ready() -> bool:
        circuits = api.get("/v1/lighting/circuits").json()["items"]
        seen = {c["device_id"] for c in circuits}
        alerts = api.get("/v1/alerts", params={"device_id": cabinets["faulty"]}).json()
        return {cabinets["lit"], cabinets["faulty"]} <= seen and len(alerts) == 1

    wait_for(ready, timeout=90, interval=1, what="the cabinets' state and the fault's alert")
    (alert,) = api.get("/v1/alerts", params={"device_id": cabinets["faulty"]}).json()

    console.sign_in(admin_key, "/lighting")
    assert console.text("h1") == "Éclairage"
    assert console.status() == ""

    # The plan: one mark per cabinet, coloured by its state (the fault wins over off).
    marks = {
        m.get_attribute("data-device"): m.get_attribute("class")
        for m in console.all("#cabinet-map circle")
    }
    assert marks[cabinets["lit"]] == "cabinet lit"
    assert marks[cabinets["faulty"]] == "cabinet fault"
    assert marks[cabinets["quiet"]] == "cabinet quiet"
    rows = {
        r.get_attribute("data-device"): r.find_element("css selector", ".faults").text
        for r in console.all("#cabinets tr[data-device]")
    }
    assert [rows[cabinets[k]] for k in ("lit", "faulty", "quiet")] == ["0", "1", "0"]

    # Faults: the alert, linked to its page, named in French.
    fault = console.one(f'#faults tr[data-alert="{alert["id"]}"]')
    assert "Lampe en panne" in fault.text and cabinets["faulty"] in fault.text

    # Tonight: the almanac's sunset and sunrise, in the town's clock (the page's own format).
    zone = console.js("return TP.tz")
    dusk, dawn = _tonight(datetime.now(UTC), zone)
    for field, t in (("sunset", dusk), ("sunrise", dawn)):
        shown = console.text(f'#tonight [data-field="{field}"]')
        expected = console.js("return TP.clock(arguments[0])", t.isoformat())
        # The almanac's second may fall either side of the service's rounding to the second.
        later = console.js("return TP.clock(arguments[0])", (t + timedelta(seconds=1)).isoformat())
        assert shown.startswith((expected, later)), (field, shown, expected)
    # The stack's town has no switch-off nor dimming: the whole night at full power.
    assert console.text('#tonight [data-field="off"]') == "aucun"
    night_h = (dawn - dusk) / timedelta(hours=1)
    full = console.js("return TP.num(arguments[0], 1)", round(night_h, 2))
    assert console.text('#tonight [data-field="hours"]').startswith(f"{full} h")

    # Savings over the page's 30 days, reconciled with the readings themselves.
    with psycopg.connect(stack.database_url()) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(baseline_kwh), 0) - coalesce(sum(coalesce(energy_kwh, 0)), 0)"
            " FROM lighting_readings WHERE ts >= now() - interval '30 days'"
            " AND baseline_kwh IS NOT NULL"
        ).fetchone()
    assert row is not None
    saved = console.js("return TP.num(arguments[0], 1)", float(row[0]))
    assert console.text('#savings [data-field="saved_kwh"]') == f"{saved} kWh"

    serious = [v for v in console.axe() if v["impact"] in ("serious", "critical")]
    assert serious == []

    console.open("/lighting?lang=en")
    assert console.text("h1") == "Lighting"
    assert "Lamp failure" in console.one(f'#faults tr[data-alert="{alert["id"]}"]').text
    assert console.text('#tonight [data-field="off"]') == "none"


def test_the_public_page_lists_the_published_lighting_schedule(
    console: Console, api: httpx.Client
) -> None:
    dataset = "lighting-schedule"
    was_published = any(
        d["published"] for d in api.get("/v1/open-data/datasets").json() if d["id"] == dataset
    )
    assert api.put(f"/v1/open-data/datasets/{dataset}", json=None).status_code == 200
    try:
        # No sign-in: the page citizens read.
        console.open("/public?lang=en")
        item = console.one(f'#datasets li[data-dataset="{dataset}"]')
        title = api.get("/open-data/").json()["dcat:dataset"]
        (entry,) = [d for d in title if d["dct:identifier"] == dataset]
        assert entry["dct:title"] in item.text
        links = {
            a.get_attribute("href")
            for a in item.find_elements("css selector", "a")
            if a.get_attribute("href")
        }
        assert {f"{console.base}/open-data/{dataset}.{ext}" for ext in ("csv", "json")} <= links
    finally:
        if not was_published:
            api.delete(f"/v1/open-data/datasets/{dataset}")
