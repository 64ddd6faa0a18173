"""Operator API app."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.api import proxy
from services.api.console import routes as console
from services.api.deps import DYNSEC, UPSTREAM
from services.api.reports import figures as report_figures
from services.api.reports import routes as reports
from services.api.reports import service as report_service
from services.api.routes import admin, devices, opendata, register, retention
from services.api.settings import ApiSettings
from shared.db import create_pool
from shared.factors import load_factors
from shared.http import POOL, PUBLIC_PATHS, StrictTransport, create_service_app
from shared.mqtt_admin import DynSecClient, DynSecError
from shared.supervise import Supervisor
from shared.throttle import ConcurrencyCaps, RouteClass
from shared.townzone import check_rollup_zone

log = logging.getLogger(__name__)

# The broker may still be starting when the API starts (docker-compose starts them together).
MQTT_CONNECT_ATTEMPTS = 30


async def _connect_dynsec(settings: ApiSettings) -> DynSecClient:
    for attempt in range(MQTT_CONNECT_ATTEMPTS):
        client = DynSecClient(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=settings.mqtt_password.get_secret_value(),
        )
        try:
            await asyncio.to_thread(client.connect)
            return client
        except (DynSecError, OSError) as exc:
            log.warning("MQTT admin connection failed (attempt %d): %s", attempt + 1, exc)
            await asyncio.sleep(1)
    raise DynSecError("could not reach the MQTT broker as its dynsec admin")


# A device's raw readings: up to max_raw_readings rows in one answer.
EXPORTS = re.compile(r"^/v1/devices/[^/]+/readings$")


def route_classes(settings: ApiSettings) -> tuple[list[RouteClass], RouteClass]:
    """The classes of routes that may not starve each other, and the class of the rest.

    >>> classes, rest = route_classes(ApiSettings(dev_mode=True))
    >>> [c.name for c in classes if c.matches("/v1/waste/plan")], rest.name
    (['solver'], 'other')
    """
    # The public register is read without a key, like open data: it shares open data's slots.
    prefixes = (opendata.public_router.prefix, register.public_router.prefix)
    return [
        RouteClass(
            "open-data",
            settings.max_concurrent_open_data,
            lambda p: any(p == x or p.startswith(x + "/") for x in prefixes),
        ),
        RouteClass("solver", settings.max_concurrent_solver, lambda p: p == "/v1/waste/plan"),
        RouteClass(
            "exports", settings.max_concurrent_exports, lambda p: EXPORTS.match(p) is not None
        ),
        # HTTP push needs no key: without a class of its own, a flood of it would take the
        # operators' slots.
        RouteClass(
            "ingest", settings.max_concurrent_ingest, lambda p: p.startswith(proxy.INGEST_PATH)
        ),
    ], RouteClass("other", settings.max_concurrent_other, lambda p: True)


async def _mqtt_connected(app: FastAPI) -> None:
    if not DYNSEC.of(app).is_connected():
        raise ConnectionError("MQTT admin connection down")


def create_app(settings: ApiSettings) -> FastAPI:
    # Read once: a report names the table's version it used.
    factors = load_factors(settings.factors)
    thresholds = report_figures.Thresholds(
        useful_fill_pct=settings.report_useful_fill_pct,
        weak_rssi_dbm=settings.report_weak_rssi_dbm,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI, supervisor: Supervisor) -> AsyncIterator[None]:
        # Its daily figures come from the daily rollup: days of another zone are refused here.
        await check_rollup_zone(settings.database_url, settings.timezone)
        pool = create_pool(settings.database_url, min_size=2, max_size=10)
        await pool.open()
        dynsec = await _connect_dynsec(settings)
        # The broker's service identities as they must be, whatever happened to them while the
        # API was down (a device registered as `gateway-1` by an older version, a role edited
        # by hand), and every device bound to its own client id.
        await asyncio.to_thread(dynsec.repair)
        # Domain services answer from memory or one query: 30 s is a generous ceiling.
        http = httpx.AsyncClient(timeout=30)
        POOL.put(app, pool)
        DYNSEC.put(app, dynsec)
        UPSTREAM.put(app, http)
        reporting = reports.Reporting(
            pool=pool,
            settings=settings,
            factors=factors,
            thresholds=thresholds,
            footprint_of=report_service.measured_footprint(factors),
        )
        reports.REPORTING.put(app, reporting)
        if settings.report_schedule:
            supervisor.start("monthly-report", reports.monthly(reporting))
        try:
            yield
        finally:
            await supervisor.stop()
            await http.aclose()
            await asyncio.to_thread(dynsec.close)
            await pool.close()

    def install(app: FastAPI) -> tuple[str, ...]:
        console_paths = console.install(app, settings)
        # Last: it matches any /v1/<domain>/... that no route above claimed.
        app.include_router(proxy.router)
        classes, rest = route_classes(settings)
        # Before the Gate is put in front, so inside it: a request holds a slot only once its
        # key is good.
        app.add_middleware(
            ConcurrencyCaps,
            classes=classes,
            default=rest,
            exempt=PUBLIC_PATHS,
            retry_after_s=settings.capped_retry_after_s,
        )
        return console_paths

    app = create_service_app(
        title="TownPulse operator API",
        version="1",
        description="Devices, readings and dead letters of a town's sensors. "
        "Every endpoint but /healthz, /readyz, /metrics, /open-data/ and /register/ needs "
        "`Authorization: Bearer <key>`; `x-required-role` says which role (viewer, operator, "
        "admin) an operation needs.",
        settings=settings,
        lifespan=lifespan,
        routers=[
            devices.router,
            admin.router,
            opendata.admin_router,
            opendata.public_router,
            register.admin_router,
            register.public_router,
            retention.router,
            reports.router,
        ],
        checks={"mqtt": _mqtt_connected},
        install=install,
        # HTTP push carries its senders' own secrets, which the gateway checks
        # (services/api/proxy.py).
        public=(opendata.public_router.prefix, register.public_router.prefix, proxy.INGEST_PATH),
    )
    app.add_middleware(StrictTransport)
    return app
