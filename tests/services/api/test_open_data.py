"""Open data: only what an admin published is reachable without a key, aggregated above a floor.

The stack runs with the default floors: a zone needs 3 bins, a counter's hour 10 vehicles.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from astral import Observer
from astral.sun import sunrise, sunset

from services.api import opendata
from services.lighting.settings import LightingSettings
from shared import domains
from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from testing.alerts_support import produce_readings
from tests.support import wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

ETALAB = "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"


@pytest.fixture
def public(stack_env: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack_env["API_URL"], timeout=30) as client:
        yield client


@pytest.fixture
def publisher(api: httpx.Client) -> Iterator[list[str]]:
    """Datasets published by a test; unpublished afterwards, so the town's choice is restored."""
    published: list[str] = []
    yield published
    for dataset in published:
        api.delete(f"/v1/open-data/datasets/{dataset}")


def _devices(api: httpx.Client, domain: str, metadata: dict, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        device_id = f"od-{uuid.uuid4().hex[:10]}"
        r = api.post("/v1/devices", json={"id": device_id, "domain": domain, "metadata": metadata})
        assert r.status_code == 201, r.text
        ids.append(device_id)
    return ids


def _publish(api: httpx.Client, publisher: list[str], dataset: str, **body: str) -> dict:
    r = api.put(f"/v1/open-data/datasets/{dataset}", json=body or None)
    assert r.status_code == 200, r.text
    publisher.append(dataset)
    return dict(r.json())


def test_an_unpublished_dataset_is_not_reachable(api: httpx.Client, public: httpx.Client) -> None:
    api.delete("/v1/open-data/datasets/waste-fill-by-zone")
    for path in ("waste-fill-by-zone.csv", "waste-fill-by-zone.json", "no-such-dataset.csv"):
        assert public.get(f"/open-data/{path}").status_code == 404
    ids = [d["dct:identifier"] for d in public.get("/open-data/").json()["dcat:dataset"]]
    assert "waste-fill-by-zone" not in ids
    listed = {d["id"]: d for d in api.get("/v1/open-data/datasets").json()}
    assert listed["waste-fill-by-zone"]["published"] is False
    # Everything else still needs a key.
    assert public.get("/v1/open-data/datasets").status_code == 401
    assert public.get("/v1/devices").status_code == 401


def test_a_zone_is_published_only_with_enough_bins(
    api: httpx.Client,
    public: httpx.Client,
    publisher: list[str],
    stack_env: dict[str, str],
) -> None:
    big, small = f"zone-{uuid.uuid4().hex[:8]}", f"zone-{uuid.uuid4().hex[:8]}"
    big_bins = _devices(api, "waste", {"zone": big}, 3)
    small_bins = _devices(api, "waste", {"zone": small}, 2)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    levels = {d: 20.0 + 10 * i for i, d in enumerate(big_bins + small_bins)}
    produce_readings(
        stack_env["KAFKA_BOOTSTRAP"],
        [
            ReadingBatch(
                device_id=d,
                domain=Domain.WASTE,
                received_at=now,
                readings=[Reading(ts=now - timedelta(minutes=5), metric="fill_pct", value=v)],
            )
            for d, v in levels.items()
        ],
    )
    state = _publish(api, publisher, "waste-fill-by-zone")
    assert (state["published"], state["licence"]) == (True, "etalab-2.0")

    def rows() -> list[dict] | None:
        r = public.get("/open-data/waste-fill-by-zone.json")
        assert r.status_code == 200, r.text
        found = [row for row in r.json()["items"] if row["zone"] in (big, small)]
        return found or None

    found = wait_for(rows, timeout=60, what="the zone's row")
    assert [(r["zone"], r["bins"]) for r in found] == [(big, 3)]
    assert found[0]["mean_fill_pct"] == pytest.approx(30.0)
    assert found[0]["max_fill_pct"] == pytest.approx(40.0)
    assert not any(d in str(found) for d in big_bins)

    r = public.get("/open-data/waste-fill-by-zone.csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert ETALAB in r.headers["link"]
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["bins"] for row in table if row["zone"] == big] == ["3"]
    assert not [row for row in table if row["zone"] == small]
    for device_id in big_bins + small_bins:
        api.delete(f"/v1/devices/{device_id}")


def test_a_counters_quiet_hours_are_left_out(
    api: httpx.Client,
    public: httpx.Client,
    publisher: list[str],
    stack_env: dict[str, str],
) -> None:
    (counter,) = _devices(api, "traffic", {"road": "Rue du Test", "zone": "centre"}, 1)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    # 25 vehicles in one hour, 4 in the next (under the floor of 10).
    counts = [(hour + timedelta(minutes=15 * k), 5.0) for k in range(4)]
    counts += [(hour + timedelta(hours=1, minutes=15 * k), 1.0) for k in range(4)]
    counts.append((hour + timedelta(minutes=50), 5.0))
    produce_readings(
        stack_env["KAFKA_BOOTSTRAP"],
        [
            ReadingBatch(
                device_id=counter,
                domain=Domain.TRAFFIC,
                received_at=ts,
                readings=[Reading(ts=ts, metric="vehicles", value=v)],
            )
            for ts, v in counts
        ],
    )
    _publish(api, publisher, "traffic-hourly-counts", licence="ODbL-1.0")

    def rows() -> list[dict] | None:
        r = public.get("/open-data/traffic-hourly-counts.json", params={"start": hour.isoformat()})
        assert r.status_code == 200, r.text
        assert r.json()["licence"] == "ODbL-1.0"
        return [row for row in r.json()["items"] if row["counter"] == counter] or None

    found = wait_for(rows, timeout=60, what="the counter's hour")
    assert [(row["vehicles"], row["road"]) for row in found] == [(25, "Rue du Test")]
    api.delete(f"/v1/devices/{counter}")


def test_the_catalogue_describes_each_published_dataset_in_dcat_and_schema_org(
    api: httpx.Client, public: httpx.Client, publisher: list[str]
) -> None:
    _publish(api, publisher, "energy-daily-public-buildings")
    doc = public.get("/open-data/")
    assert doc.headers["content-type"].startswith("application/ld+json")
    catalog = doc.json()
    assert "dcat:Catalog" in catalog["@type"]
    (dataset,) = [
        d for d in catalog["dcat:dataset"] if d["dct:identifier"] == "energy-daily-public-buildings"
    ]
    assert {"dcat:Dataset", "schema:Dataset"} <= set(dataset["@type"])
    assert dataset["dct:license"] == {"@id": ETALAB}
    assert dataset["schema:license"] == ETALAB
    media = {
        d["dcat:mediaType"]: d["dcat:downloadURL"]["@id"] for d in dataset["dcat:distribution"]
    }
    assert set(media) == {"text/csv", "application/json"}
    for url in media.values():
        # Relative (no TOWNPULSE_PUBLIC_BASE_URL in the stack): resolved against the API's URL.
        assert url.startswith("/open-data/")
        assert public.get(url).status_code == 200
    rows = public.get("/open-data/energy-daily-public-buildings.json").json()["items"]
    assert all(r["building_type"] in {"school", "town_hall", "gym", "library"} for r in rows)
    assert all(r["buildings"] >= 3 for r in rows)

    assert api.delete("/v1/open-data/datasets/energy-daily-public-buildings").status_code == 204
    publisher.remove("energy-daily-public-buildings")
    assert public.get("/open-data/energy-daily-public-buildings.csv").status_code == 404


def test_the_datasets_offered_are_those_the_registered_manifests_declare(
    api: httpx.Client,
) -> None:
    listed = [d["id"] for d in api.get("/v1/open-data/datasets").json()]
    assert listed == [d.id for m in domains.registered() for d in m.datasets]
    assert {"lighting-monthly-kwh-by-district", "lighting-schedule"} <= set(listed)


def test_lighting_kwh_per_district_and_month_matches_the_readings(
    api: httpx.Client,
    public: httpx.Client,
    publisher: list[str],
    stack: Stack,
    stack_env: dict[str, str],
) -> None:
    big, small = f"district-{uuid.uuid4().hex[:8]}", f"district-{uuid.uuid4().hex[:8]}"
    # The district read from `district`, else `zone`: both kinds of cabinet count.
    cabinets = _devices(api, "lighting", {"district": big}, 2)
    cabinets += _devices(api, "lighting", {"zone": big}, 1)
    lone = _devices(api, "lighting", {"district": small}, 2)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    sent = {
        d: [(now - timedelta(minutes=5 + 15 * k), 0.2 + 0.05 * i + 0.01 * k) for k in range(3)]
        for i, d in enumerate(cabinets + lone)
    }
    produce_readings(
        stack_env["KAFKA_BOOTSTRAP"],
        [
            ReadingBatch(
                device_id=d,
                domain=Domain.LIGHTING,
                received_at=now,
                readings=[Reading(ts=ts, metric="energy_kwh", value=v) for ts, v in values],
            )
            for d, values in sent.items()
        ],
    )
    _publish(api, publisher, "lighting-monthly-kwh-by-district")
    start = (now - timedelta(days=3)).isoformat()

    def rows() -> list[dict] | None:
        r = public.get("/open-data/lighting-monthly-kwh-by-district.json", params={"start": start})
        assert r.status_code == 200, r.text
        found = [row for row in r.json()["items"] if row["district"] in (big, small)]
        # Every reading rolled up: the sum is complete.
        total = sum(v for d in cabinets for _, v in sent[d])
        return found if found and found[0]["kwh"] == pytest.approx(total, abs=1e-3) else None

    (row,) = wait_for(rows, timeout=90, what="the district's month, all readings counted")
    # Reconciled with the raw readings, summed here by the town's month.
    zone = LightingSettings(dev_mode=True).timezone
    with psycopg.connect(stack.database_url()) as conn:
        (month, kwh, n) = conn.execute(
            "SELECT to_char(r.ts AT TIME ZONE %s, 'YYYY-MM'), sum(r.value),"
            " count(DISTINCT r.device_id) FROM readings r"
            " WHERE r.device_id = ANY(%s) AND r.metric = 'energy_kwh' GROUP BY 1",
            (zone, cabinets),
        ).fetchone() or (None, None, None)
    assert (row["month"], row["cabinets"]) == (month, n) == (month, 3)
    assert row["kwh"] == pytest.approx(float(kwh), abs=1e-3)
    assert row["first_day"] <= row["last_day"]
    assert not any(d in str(row) for d in cabinets)

    table = list(
        csv.DictReader(
            io.StringIO(
                public.get(
                    "/open-data/lighting-monthly-kwh-by-district.csv", params={"start": start}
                ).text
            )
        )
    )
    assert [r["cabinets"] for r in table if r["district"] == big] == ["3"]
    assert not [r for r in table if r["district"] == small]
    for device_id in cabinets + lone:
        api.delete(f"/v1/devices/{device_id}")


def test_the_published_lighting_schedule_follows_the_sun_at_the_towns_coordinates(
    api: httpx.Client, public: httpx.Client, publisher: list[str]
) -> None:
    api.delete("/v1/open-data/datasets/lighting-schedule")
    assert public.get("/open-data/lighting-schedule.json").status_code == 404
    _publish(api, publisher, "lighting-schedule")
    day = datetime.now(UTC).date() + timedelta(days=2)
    start = datetime.combine(day, time(12), UTC)
    r = public.get(
        "/open-data/lighting-schedule.json",
        params={"start": start.isoformat(), "end": (start + timedelta(days=3)).isoformat()},
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["night"] for i in items] == [str(day + timedelta(days=k)) for k in range(3)]
    # The almanac at the service's default coordinates (the stack's town), not its code.
    s = LightingSettings(dev_mode=True)
    observer, tz = (
        Observer(latitude=s.town_latitude, longitude=s.town_longitude),
        ZoneInfo(s.timezone),
    )
    for item in items:
        night = date.fromisoformat(item["night"])
        dusk = sunset(observer, night, tzinfo=tz)
        dawn = sunrise(observer, night + timedelta(days=1), tzinfo=tz)
        assert abs(datetime.fromisoformat(item["sunset"]) - dusk) < timedelta(seconds=1)
        assert abs(datetime.fromisoformat(item["sunrise"]) - dawn) < timedelta(seconds=1)
        # No switch-off nor dimming in the stack's town: lit the whole night.
        assert item["full_h"] == pytest.approx((dawn - dusk) / timedelta(hours=1), abs=0.01)
        assert (item["off_h"], item["dim_h"], item["off_from"]) == (0, 0, None)
    csv_text = public.get("/open-data/lighting-schedule.csv").text
    assert csv_text.splitlines()[0] == ",".join(opendata.DATASETS["lighting-schedule"].columns)
    # Its service's refusal reaches the citizen with its reason.
    period = {"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    bad = public.get("/open-data/lighting-schedule.json", params=period)
    assert bad.status_code == 422 and "at most" in bad.text
