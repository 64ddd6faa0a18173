"""The public register of algorithms and sensors: anyone reads it; admins set its texts and
record the quality figures of evaluation runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.api import register
from services.api.adapters import repository as repo
from services.api.deps import Settings
from services.api.settings import ApiSettings
from shared.algorithms import Figure
from shared.db import Pool
from shared.http import Admin, AppPool, Viewer

admin_router = APIRouter(prefix="/v1/register", tags=["register"])
public_router = APIRouter(prefix="/register", tags=["register (public)"])

Lang = Literal["fr", "en"]
AlgorithmId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]*\.[a-z0-9_.-]{1,80}$")]
# An evaluation run may be dated back this far (a re-run of an old benchmark), not later than
# now (with a minute for clocks).
OLDEST_EVALUATION = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=1)
# A mailbox a citizen can write to: a plain local part, a host name with a dot.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
EMAIL = re.compile(rf"[^@\s<>\"(),;:]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")


class QualityIn(BaseModel):
    """One evaluation run's figures for one algorithm (at least one figure)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=200, description="what was evaluated on")
    command: str = Field(min_length=1, max_length=1000, description="how to run it again")
    evaluated_at: datetime | None = Field(default=None, description="default: now")
    recall: float | None = Field(default=None, ge=0, le=1)
    false_alerts_per_device_month: float | None = Field(default=None, ge=0, le=100_000)
    forecast_error_ratio: float | None = Field(default=None, gt=0, le=1000)
    baseline: str | None = Field(default=None, pattern=r"^[a-z_]{1,40}$")
    horizon: str | None = Field(default=None, pattern=r"^[0-9]{1,4}(min|h|d|step)s?$")
    # Anomaly figures at a threshold fixed before the run, or the best one for the data set.
    threshold_basis: Literal["fixed", "file_optimised"] | None = None

    @field_validator("dataset", "command")
    @classmethod
    def _printable(cls, value: str) -> str:
        text = register.clean_text(value, max_length=1000)
        if not text:
            raise ValueError("must not be blank")
        return text

    @field_validator("evaluated_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("evaluated_at needs a time zone offset")
        if not OLDEST_EVALUATION <= value <= datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError("evaluated_at must be between 2000 and now")
        return value

    @model_validator(mode="after")
    def _some_figure(self) -> QualityIn:
        if not self.figures():
            raise ValueError(f"give at least one of {', '.join(f.value for f in Figure)}")
        return self

    def figures(self) -> dict[str, float]:
        return {f.value: v for f in Figure if (v := getattr(self, f.value)) is not None}


class QualityOut(BaseModel):
    algorithm: str
    evaluated_at: datetime
    recorded_at: datetime
    dataset: str
    command: str
    figures: dict[str, Any]


class TextsIn(BaseModel):
    """The texts to set; a field left out is kept, an empty one is removed."""

    model_config = ConfigDict(extra="forbid")

    town_name: str | None = Field(default=None, max_length=120)
    contact_service: str | None = Field(default=None, max_length=200)
    contact_email: str | None = Field(default=None, max_length=254)
    intro_fr: str | None = Field(default=None, max_length=2000)
    intro_en: str | None = Field(default=None, max_length=2000)

    @field_validator("town_name", "contact_service", "intro_fr", "intro_en")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return None if value is None else register.clean_text(value, max_length=2000)

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if value and EMAIL.fullmatch(value) is None:
            raise ValueError("not an email address")
        return value


class TextsOut(BaseModel):
    town_name: str | None
    contact_service: str | None
    contact_email: str | None
    intro_fr: str | None
    intro_en: str | None
    updated_at: datetime | None


async def build(pool: Pool, settings: ApiSettings, lang: str) -> dict[str, Any]:
    """The register in `lang`, as the JSON and the HTML page show it."""
    since = datetime.now(UTC) - timedelta(days=settings.register_metrics_days)
    async with pool.connection() as conn:
        declarations = await repo.register_declarations(conn)
        latest = await repo.register_latest_quality(conn)
        texts, texts_at = await repo.register_texts(conn)
        rows = await repo.register_sensors(conn, grid_deg=settings.register_grid_deg, since=since)
    sensors = [
        {
            "basis": r["basis"],
            "district": (
                register.grid_cell(r["lat_cell"], r["lon_cell"], settings.register_grid_deg)
                if r["basis"] == register.BASIS_GRID
                else r["zone"]
            ),
            "domain": r["domain"],
            "metric": r["metric"],
            "devices": r["devices"],
        }
        for r in rows
    ]
    return register.document(
        lang=lang,
        declarations=declarations,
        latest_quality=latest,
        texts=texts,
        texts_updated_at=texts_at,
        default_town=settings.open_data_publisher,
        retention_settings=settings.retention,
        sensors=sensors,
        links={
            "html": f"/public/register?lang={lang}",
            "json": f"{public_router.prefix}/?lang={lang}",
            "open_data": "/open-data/",
        },
    )


@public_router.get("/", name="register", response_class=JSONResponse)
async def public_register(pool: AppPool, settings: Settings, lang: Lang = "fr") -> JSONResponse:
    """The register of algorithms and sensors, in French or English. No key needed."""
    return JSONResponse(jsonable_encoder(await build(pool, settings, lang)))


@admin_router.put("/quality/{algorithm}", response_model=QualityOut)
async def record_quality(
    algorithm: AlgorithmId, body: QualityIn, request: Request, pool: AppPool, who: Admin
) -> QualityOut:
    """Record an evaluation run's figures: the register shows the newest run per algorithm."""
    async with pool.connection() as conn:
        declared = {r["id"]: r for r in await repo.register_declarations(conn)}
        known = declared.get(algorithm)
        if known is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such algorithm in service")
        applies = set(known["declaration"]["figures"])
        wrong = sorted(set(body.figures()) - applies)
        if wrong:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                detail=f"{', '.join(wrong)} does not apply to {algorithm}"
                f" (it has: {', '.join(sorted(applies)) or 'no figures'})",
            )
        figures: dict[str, Any] = {
            **body.figures(),
            "baseline": body.baseline,
            "horizon": body.horizon,
            "threshold_basis": body.threshold_basis,
        }
        request.state.audit_detail = {"dataset": body.dataset, **body.figures()}
        row = await repo.record_quality(
            conn,
            algorithm=algorithm,
            evaluated_at=body.evaluated_at or datetime.now(UTC),
            dataset=body.dataset,
            command=body.command,
            figures={k: v for k, v in figures.items() if v is not None},
            by=who.key_id,
        )
    return QualityOut(**row)


@admin_router.get("/texts", response_model=TextsOut)
async def get_texts(pool: AppPool, _: Viewer) -> TextsOut:
    """The register's texts as set (unset ones are null: the register shows its defaults)."""
    async with pool.connection() as conn:
        texts, at = await repo.register_texts(conn)
    return TextsOut(**{k: texts.get(k) for k in register.TEXT_KEYS}, updated_at=at)


@admin_router.put("/texts", response_model=TextsOut)
async def set_texts(body: TextsIn, request: Request, pool: AppPool, who: Admin) -> TextsOut:
    """Set the town's name, the contact and the introductions; "" removes one."""
    given = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if not given:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail="no text given")
    request.state.audit_detail = {"texts": sorted(given)}
    async with pool.connection() as conn:
        await repo.set_register_texts(conn, texts=given, by=who.key_id)
        texts, at = await repo.register_texts(conn)
    return TextsOut(**{k: texts.get(k) for k in register.TEXT_KEYS}, updated_at=at)
