"""Open data: the datasets a town may publish, their licences, DCAT/schema.org metadata, CSV.

Pure logic (no I/O). The datasets are those the registered domains' manifests declare. Every
dataset made of devices' data is an aggregate whose rows each stand for enough devices (or, for
traffic counters, enough vehicles) that no single device's or person's behaviour can be read off
a row: rows under the floor are left out, never rounded or blurred. A dataset of no device's
data (the lighting schedule the council set) has no floor.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from shared import domains


class Licence(StrEnum):
    """SPDX identifiers of the licences a dataset may be published under."""

    ETALAB_2_0 = "etalab-2.0"  # Licence Ouverte 2.0, the French administration's default
    ODBL_1_0 = "ODbL-1.0"
    CC_BY_4_0 = "CC-BY-4.0"
    CC0_1_0 = "CC0-1.0"


LICENCE_URLS = {
    Licence.ETALAB_2_0: "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
    Licence.ODBL_1_0: "https://opendatacommons.org/licenses/odbl/1-0/",
    Licence.CC_BY_4_0: "https://creativecommons.org/licenses/by/4.0/",
    Licence.CC0_1_0: "https://creativecommons.org/publicdomain/zero/1.0/",
}


class Floor(StrEnum):
    """What each published row must aggregate at least `k` of (shared/domains.py FLOORS)."""

    DEVICES = "devices"
    VEHICLES = "vehicles"


# The datasets come from the registered domains' manifests (shared/domains.py): a domain's
# dataset is published here because its manifest declares it.
Dataset = domains.Dataset


@dataclass(frozen=True, slots=True)
class Source:
    """Where a dataset's rows come from: the domain service's route (`segment`, `path`) for a
    dataset its service serves, else None (this API's own query, keyed by the dataset's id)."""

    dataset: Dataset
    domain: str
    segment: str | None = None
    path: str | None = None


def sources(manifests: Iterable[domains.DomainManifest]) -> dict[str, Source]:
    """The datasets the manifests declare, by id.

    >>> [s.path for s in sources(domains.registered()).values() if s.path]
    ['/v1/lighting/schedule']
    """
    out: dict[str, Source] = {}
    for m in manifests:
        for d in m.datasets:
            if d.served_at is None:
                out[d.id] = Source(d, m.name)
            else:
                out[d.id] = Source(d, m.name, m.routes[0], f"/v1/{m.routes[0]}/{d.served_at}")
    return out


SOURCES = sources(domains.registered())
DATASETS = {k: s.dataset for k, s in SOURCES.items()}


def to_csv(dataset: Dataset, rows: list[dict[str, Any]]) -> str:
    """Rows as CSV with a header line, in the dataset's column order.

    >>> d = DATASETS["waste-fill-by-zone"]
    >>> print(to_csv(d, [{"day": date(2026, 1, 2), "zone": "centre", "bins": 4,
    ...                   "mean_fill_pct": 41.5, "max_fill_pct": 90.0}]), end="")
    day,zone,bins,mean_fill_pct,max_fill_pct
    2026-01-02,centre,4,41.5,90.0
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(dataset.columns)
    for row in rows:
        writer.writerow([_text(row[c]) for c in dataset.columns])
    return out.getvalue()


def _text(value: Any) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return "" if value is None else str(value)


def catalog_jsonld(
    *,
    base_url: str,
    publisher: str,
    published: list[dict[str, Any]],
    floors: dict[str, int],
) -> dict[str, Any]:
    """A DCAT catalogue of the published datasets, typed for schema.org as well.

    `published`: rows with `dataset`, `licence`, `published_at`.

    >>> doc = catalog_jsonld(base_url="https://town.example/open-data/", publisher="Town",
    ...                      published=[], floors={Floor.DEVICES: 3, Floor.VEHICLES: 10})
    >>> doc["@type"], doc["dcat:dataset"]
    (['dcat:Catalog', 'schema:DataCatalog'], [])
    """
    base = base_url.rstrip("/") + "/"
    return {
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "schema": "https://schema.org/",
            # Our one term of our own (the aggregation floor), named under the catalogue.
            "townpulse": f"{base}vocab#",
        },
        "@id": base,
        "@type": ["dcat:Catalog", "schema:DataCatalog"],
        "dct:title": f"{publisher} open data",
        "schema:name": f"{publisher} open data",
        "dct:publisher": {"@type": ["foaf:Agent", "schema:Organization"], "foaf:name": publisher},
        "dcat:dataset": [
            dataset_jsonld(
                DATASETS[p["dataset"]],
                base_url=base,
                publisher=publisher,
                licence=Licence(p["licence"]),
                published_at=p["published_at"],
                floors=floors,
            )
            for p in published
            if p["dataset"] in DATASETS
        ],
    }


def dataset_jsonld(
    dataset: Dataset,
    *,
    base_url: str,
    publisher: str,
    licence: Licence,
    published_at: datetime,
    floors: dict[str, int],
) -> dict[str, Any]:
    """One dataset: DCAT and schema.org terms side by side, a CSV and a JSON distribution."""
    licence_url = LICENCE_URLS[licence]
    return {
        "@id": f"{base_url}{dataset.id}",
        "@type": ["dcat:Dataset", "schema:Dataset"],
        "dct:identifier": dataset.id,
        "dct:title": dataset.title,
        "schema:name": dataset.title,
        "dct:description": dataset.description,
        "schema:description": dataset.description,
        "dcat:keyword": list(dataset.keywords),
        "schema:keywords": list(dataset.keywords),
        "dct:license": {"@id": licence_url},
        "schema:license": licence_url,
        "dct:issued": published_at.isoformat(),
        "schema:datePublished": published_at.isoformat(),
        "dct:publisher": {"@type": ["foaf:Agent", "schema:Organization"], "foaf:name": publisher},
        "dcat:temporalResolution": dataset.resolution,
        "schema:variableMeasured": list(dataset.columns),
        # None: the rows hold no device's data (a schedule), so no floor applies.
        "townpulse:aggregationFloor": None
        if dataset.floor is None
        else {"per_row_at_least": floors[dataset.floor], "of": dataset.floor},
        "dcat:distribution": [
            {
                "@type": ["dcat:Distribution", "schema:DataDownload"],
                "dcat:downloadURL": {"@id": f"{base_url}{dataset.id}.{ext}"},
                "schema:contentUrl": f"{base_url}{dataset.id}.{ext}",
                "dcat:mediaType": media,
                "schema:encodingFormat": media,
                "dct:license": {"@id": licence_url},
            }
            for ext, media in (("csv", "text/csv"), ("json", "application/json"))
        ],
    }
