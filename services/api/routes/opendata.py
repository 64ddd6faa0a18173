"""Open data: admins publish datasets; anyone may read what is published, and only that."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from services.api import opendata, proxy
from services.api.adapters import repository as repo
from services.api.deps import Settings, Upstream
from services.api.opendata import DATASETS, SOURCES, Floor, Licence
from services.api.settings import ApiSettings
from shared.db import Pool
from shared.http import Admin, AppPool, Viewer, time_window

admin_router = APIRouter(prefix="/v1/open-data", tags=["open data"])
public_router = APIRouter(prefix="/open-data", tags=["open data (public)"])

DatasetId = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,64}$")]
# A download covers this many days unless `start` says otherwise.
DEFAULT_SPAN = timedelta(days=30)


class PublishIn(BaseModel):
    licence: Licence = Field(default=Licence.ETALAB_2_0, description="SPDX id")


class DatasetState(BaseModel):
    id: str
    title: str
    description: str
    columns: list[str]
    published: bool
    licence: Licence | None
    published_at: datetime | None
    published_by: str | None


class OpenRows(BaseModel):
    dataset: str
    licence: Licence
    start: datetime
    end: datetime
    items: list[dict[str, Any]]
    truncated: bool


def _known(dataset: str) -> opendata.Dataset:
    known = DATASETS.get(dataset)
    if known is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such dataset")
    return known


def _state(dataset: opendata.Dataset, publication: dict[str, Any] | None) -> DatasetState:
    return DatasetState(
        id=dataset.id,
        title=dataset.title,
        description=dataset.description,
        columns=list(dataset.columns),
        published=publication is not None,
        licence=publication["licence"] if publication else None,
        published_at=publication["published_at"] if publication else None,
        published_by=publication["published_by"] if publication else None,
    )


@admin_router.get("/datasets", response_model=list[DatasetState])
async def list_datasets(pool: AppPool, _: Viewer) -> list[DatasetState]:
    """Every dataset the town could publish, and whether (and how) it is."""
    async with pool.connection() as conn:
        published = {p["dataset"]: p for p in await repo.publications(conn)}
    return [_state(d, published.get(d.id)) for d in DATASETS.values()]


@admin_router.put("/datasets/{dataset}", response_model=DatasetState)
async def publish_dataset(
    dataset: DatasetId,
    request: Request,
    pool: AppPool,
    who: Admin,
    body: PublishIn | None = None,
) -> DatasetState:
    """Publish a dataset (or change its licence): from now on anyone can download it."""
    known = _known(dataset)
    licence = (body or PublishIn()).licence
    request.state.audit_detail = {"licence": licence.value}
    async with pool.connection() as conn:
        row = await repo.publish(conn, dataset=dataset, licence=licence.value, by=who.key_id)
    return _state(known, row)


@admin_router.delete("/datasets/{dataset}", status_code=status.HTTP_204_NO_CONTENT)
async def unpublish_dataset(dataset: DatasetId, pool: AppPool, _: Admin) -> Response:
    """Stop publishing a dataset at once."""
    _known(dataset)
    async with pool.connection() as conn:
        if not await repo.unpublish(conn, dataset):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="dataset not published")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def catalogue_base(settings: ApiSettings) -> str:
    """What the catalogue's links start with: the configured public address, else a path.

    >>> catalogue_base(ApiSettings(dev_mode=True))
    '/open-data/'
    >>> catalogue_base(ApiSettings(dev_mode=True, public_base_url="https://data.town.example/"))
    'https://data.town.example/open-data/'
    """
    base = (settings.public_base_url or "").rstrip("/")
    return f"{base}{public_router.prefix}/"


def _floors(settings: ApiSettings) -> dict[str, int]:
    return {
        Floor.DEVICES: settings.open_data_min_devices,
        Floor.VEHICLES: settings.open_data_min_vehicles,
    }


@public_router.get("/", name="catalog", response_class=JSONResponse)
async def catalog(pool: AppPool, settings: Settings) -> JSONResponse:
    """The published datasets as a DCAT / schema.org catalogue (JSON-LD). No key needed."""
    async with pool.connection() as conn:
        published = await repo.publications(conn)
    doc = opendata.catalog_jsonld(
        base_url=catalogue_base(settings),
        publisher=settings.open_data_publisher,
        published=published,
        floors=_floors(settings),
    )
    return JSONResponse(doc, media_type="application/ld+json")


async def _rows(
    pool: Pool,
    settings: ApiSettings,
    dataset: str,
    *,
    upstream: httpx.AsyncClient,
    start: datetime | None,
    end: datetime | None,
) -> tuple[opendata.Dataset, Licence, datetime, datetime, list[dict[str, Any]], bool]:
    source = SOURCES.get(dataset)
    async with pool.connection() as conn:
        publication = await repo.publications(conn, dataset)
    # Unknown and unpublished look alike: what is not published does not exist here.
    if not publication or source is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such dataset")
    if source.path is not None:
        assert source.segment is not None
        # Its service computes the rows and their default period (a schedule looks ahead).
        params = {k: v.isoformat() for k, v in (("start", start), ("end", end)) if v is not None}
        body = await proxy.public_json(
            upstream, settings, segment=source.segment, path=source.path, params=params
        )
        rows = list(body["items"])
        start, end = datetime.fromisoformat(body["start"]), datetime.fromisoformat(body["end"])
    else:
        start, end = time_window(start, end, default_span=DEFAULT_SPAN)
        async with pool.connection() as conn:
            rows = await repo.open_dataset_rows(
                conn,
                dataset=dataset,
                start=start,
                end=end,
                min_devices=settings.open_data_min_devices,
                min_vehicles=settings.open_data_min_vehicles,
                public_building_types=list(settings.open_data_public_building_types),
                limit=settings.open_data_max_rows + 1,
                zone=settings.timezone,
            )
    truncated = len(rows) > settings.open_data_max_rows
    licence = Licence(publication[0]["licence"])
    return DATASETS[dataset], licence, start, end, rows[: settings.open_data_max_rows], truncated


@public_router.get("/{dataset}.json", response_model=OpenRows)
async def download_json(
    dataset: DatasetId,
    pool: AppPool,
    settings: Settings,
    upstream: Upstream,
    start: datetime | None = None,
    end: datetime | None = None,
) -> OpenRows:
    """A published dataset's rows in [start, end) (30 days to now by default). No key needed."""
    known, licence, start, end, rows, truncated = await _rows(
        pool, settings, dataset, upstream=upstream, start=start, end=end
    )
    return OpenRows(
        dataset=known.id, licence=licence, start=start, end=end, items=rows, truncated=truncated
    )


@public_router.get(
    "/{dataset}.csv",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def download_csv(
    dataset: DatasetId,
    pool: AppPool,
    settings: Settings,
    upstream: Upstream,
    start: datetime | None = None,
    end: datetime | None = None,
) -> PlainTextResponse:
    """A published dataset's rows in [start, end) as CSV with a header line. No key needed."""
    known, licence, _, _, rows, truncated = await _rows(
        pool, settings, dataset, upstream=upstream, start=start, end=end
    )
    headers = {
        "Link": f'<{opendata.LICENCE_URLS[licence]}>; rel="license"',
        "X-Truncated": "true" if truncated else "false",
    }
    return PlainTextResponse(opendata.to_csv(known, rows), media_type="text/csv", headers=headers)
