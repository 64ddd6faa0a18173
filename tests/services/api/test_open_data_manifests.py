"""Open data follows the manifests: the datasets offered are exactly those the registered
domains declare, each with its rows' source (the API's query, or its service's route)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from services.api import opendata
from services.api.adapters import repository as repo
from shared import domains
from shared.domains import Dataset, DomainManifest, ServicePart

pytestmark = pytest.mark.unit


def test_the_datasets_are_exactly_those_the_manifests_declare() -> None:
    declared = {d.id: d for m in domains.registered() for d in m.datasets}
    assert declared == opendata.DATASETS
    # Lighting's are there because its manifest declares them, not by name in the API.
    lighting = next(m for m in domains.registered() if m.name == "lighting")
    assert {d.id for d in lighting.datasets} <= set(opendata.DATASETS)
    assert {opendata.SOURCES[d.id].domain for d in lighting.datasets} == {"lighting"}


def test_each_dataset_the_api_queries_has_its_query_and_no_query_is_left_over() -> None:
    queried = {k for k, s in opendata.SOURCES.items() if s.path is None}
    assert queried == set(repo.OPEN_DATA_QUERIES)


def test_a_dataset_its_service_serves_is_read_from_the_domains_first_route() -> None:
    served = Dataset("rain-days", "Rain", "Rainy days.", ("rain",), ("day",), None, "P1D", "days")
    water = DomainManifest(
        "water",
        "readings.water",
        ServicePart("services.water", 18647),
        routes=("water", "rain"),
        datasets=(served, dataclasses.replace(served, id="water-levels", served_at=None)),
    )
    sources = opendata.sources(domains.validate([water]))
    assert (sources["rain-days"].segment, sources["rain-days"].path) == ("water", "/v1/water/days")
    assert sources["water-levels"].path is None
    assert sources["water-levels"].domain == "water"


def test_the_floors_a_manifest_may_name_are_those_the_api_applies() -> None:
    assert {f.value for f in opendata.Floor} == set(domains.FLOORS)


def test_a_dataset_of_no_devices_data_states_no_floor_in_the_catalogue() -> None:
    doc = opendata.catalog_jsonld(
        base_url="/open-data/",
        publisher="Town",
        published=[
            {
                "dataset": d,
                "licence": "etalab-2.0",
                "published_at": datetime(2026, 1, 1, tzinfo=UTC),
            }
            for d in ("lighting-schedule", "lighting-monthly-kwh-by-district")
        ],
        floors={"devices": 3, "vehicles": 10},
    )
    floors = {d["dct:identifier"]: d["townpulse:aggregationFloor"] for d in doc["dcat:dataset"]}
    assert floors == {
        "lighting-schedule": None,
        "lighting-monthly-kwh-by-district": {"per_row_at_least": 3, "of": "devices"},
    }
