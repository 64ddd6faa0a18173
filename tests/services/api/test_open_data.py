"""Open data: only what an admin published is reachable without a key, aggregated above a floor.

The stack runs with the default floors: a zone needs 3 bins, a counter's hour 10 vehicles.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from testing.alerts_support import produce_readings
from tests.support import wait_for

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
