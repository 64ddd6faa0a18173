"""Console pages (HTML shells rendered in the user's language) and the few endpoints they need."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

from services.api.console import i18n
from services.api.console import repository as repo
from services.api.routes import register
from services.api.settings import ApiSettings
from shared import domains
from shared.http import AppPool, Principal, authenticate
from shared.topics import Domain

HERE = Path(__file__).parent
LANG_COOKIE = "tp_lang"
# A device silent for this long is not "reporting" on the overview (the slowest simulated sensor
# publishes every 15 minutes; a live one is never this late).
REPORTING_WINDOW = timedelta(hours=1)
LAST_READING_LOOKBACK = timedelta(days=7)

# (path, template, nav label). The label is a msgid: the template translates it. The domains'
# pages come from their manifests (shared/domains.py), after the overview.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("/", "overview", "Overview"),
    *((p.path, p.template, p.label) for m in domains.registered() for p in m.console),
    ("/alerts", "alerts", "Alerts"),
    ("/devices", "devices", "Devices"),
    ("/integrations", "integrations", "Integrations"),
    ("/profiles", "profiles", "Profiles"),
    ("/webhooks", "webhooks", "Webhooks"),
    ("/report", "report", "Report"),
)

# Scripts from this origin only, no framing: an XSS through a device name cannot load code, and
# the console never reaches an outside host.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Operator = Annotated[Principal, Depends(authenticate)]
CONSOLE_PATHS = frozenset(path for path, _, _ in PAGES) | {"/public"}


def after_signin(next_: str | None) -> str:
    """Where sign-in leads: one of the console's own pages (with its query), else the overview.

    Browsers read `/\\evil.example` as `//evil.example`, another site: so the path must be one
    of ours exactly, not merely start with a slash.

    >>> after_signin("/energy?meter=m-1"), after_signin("/%5Cevil.example")
    ('/energy?meter=m-1', '/')
    >>> after_signin("//evil.example"), after_signin("https://evil.example/"), after_signin(None)
    ('/', '/', '/')
    """
    path, _, query = (next_ or "").partition("#")[0].partition("?")
    if path not in CONSOLE_PATHS:
        return "/"
    # Re-encoded: the query cannot smuggle anything past the path, which is ours.
    query = urlencode(parse_qsl(query, keep_blank_values=True))
    return f"{path}?{query}" if query else path


class Renderer:
    """One Jinja2 environment per language, each with its gettext catalogue installed."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.translations = i18n.load()
        self.envs: dict[str, jinja2.Environment] = {}
        self.messages: dict[str, dict[str, str]] = {}
        for lang, tr in self.translations.items():
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(HERE / "templates"),
                autoescape=True,
                extensions=["jinja2.ext.i18n"],
                undefined=jinja2.StrictUndefined,
            )
            # Old-style gettext: msgids are plain text ("80 %" needs no escaping).
            env.install_gettext_translations(tr, newstyle=False)  # type: ignore[attr-defined]
            self.envs[lang] = env
            self.messages[lang] = i18n.messages(tr)

    def page(
        self,
        request: Request,
        template: str,
        *,
        public: bool = False,
        context: dict[str, Any] | None = None,
    ) -> HTMLResponse:
        query_lang = request.query_params.get("lang")
        lang = i18n.pick_language(
            query=query_lang,
            cookie=request.cookies.get(LANG_COOKIE),
        )
        html = (
            self.envs[lang]
            .get_template(f"{template}.html")
            .render(
                lang=lang,
                other_lang="en" if lang == "fr" else "fr",
                page=template,
                pages=PAGES,
                public=public,
                tz=self.settings.timezone,
                messages=self.messages[lang],
                **(context or {}),
            )
        )
        response = HTMLResponse(html, headers=SECURITY_HEADERS)
        if query_lang in i18n.LANGUAGES:
            # Not a secret, and scripts need not read it: HttpOnly, a year.
            response.set_cookie(
                LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="lax"
            )
        return response


def create_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    renderer = Renderer(settings)

    def add_page(path: str, template: str) -> None:
        async def page(request: Request) -> HTMLResponse:
            return renderer.page(request, template)

        page.__doc__ = f"The console's {template} page."
        router.add_api_route(path, page, methods=["GET"], response_class=HTMLResponse)

    for path, template, _ in PAGES:
        add_page(path, template)

    @router.get("/signin", response_class=HTMLResponse)
    async def signin(request: Request) -> HTMLResponse:
        """The sign-in page; where it leads once the key is accepted is checked here."""
        target = after_signin(request.query_params.get("next"))
        return renderer.page(request, "signin", context={"next": target})

    @router.get("/public", response_class=HTMLResponse)
    async def public_page(request: Request) -> HTMLResponse:
        """Open data for citizens: no key, only what the town published."""
        return renderer.page(request, "public", public=True)

    @router.get("/public/register", response_class=HTMLResponse)
    async def register_page(request: Request, pool: AppPool) -> HTMLResponse:
        """The register of algorithms and sensors for citizens: no key; read from the database
        at each request (unlike the other pages, whose scripts fetch their data)."""
        lang = i18n.pick_language(
            query=request.query_params.get("lang"), cookie=request.cookies.get(LANG_COOKIE)
        )
        context = {
            "register": await register.build(pool, settings, lang),
            "metrics_days": settings.register_metrics_days,
        }
        return renderer.page(request, "register", public=True, context=context)

    @router.get("/favicon.ico", response_class=RedirectResponse)
    async def favicon() -> RedirectResponse:
        """Browsers ask for it on every page, key or not: the console's icon (not a 401)."""
        return RedirectResponse("/static/favicon.svg", status_code=301)

    @router.get("/console", response_class=RedirectResponse)
    async def console() -> RedirectResponse:
        """Old habit: the console is at /."""
        return RedirectResponse("/")

    return router


def api_router() -> APIRouter:
    """JSON endpoints the console needs that no domain service offers."""
    router = APIRouter(prefix="/v1", tags=["console"])

    @router.get("/me")
    async def me(principal: Operator) -> dict[str, str]:
        """The key's id and role: what the console shows and which actions it offers."""
        return {"key_id": principal.key_id, "role": principal.role}

    @router.get("/console/freshness")
    async def freshness(pool: AppPool, _: Operator) -> dict[str, Any]:
        """Per domain: devices, how many reported in the last hour, the newest reading."""
        now = datetime.now(UTC)
        async with pool.connection() as conn:
            rows = await repo.freshness(conn, since=now - LAST_READING_LOOKBACK)
            recent = await repo.freshness(conn, since=now - REPORTING_WINDOW)
        reporting = {r["domain"]: r["reporting"] for r in recent}
        return {
            "now": now,
            "reporting_window_s": REPORTING_WINDOW.total_seconds(),
            "items": [
                {
                    "domain": r["domain"],
                    "devices": r["devices"],
                    "reporting": reporting.get(r["domain"], 0),
                    "last_reading_at": r["last_reading_at"],
                }
                for r in rows
            ],
        }

    @router.get("/console/devices")
    async def devices(
        pool: AppPool,
        _: Operator,
        q: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        domain: Domain | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        """Devices whose id or name contains `q`, each with the time of its newest reading."""
        async with pool.connection() as conn:
            rows, total = await repo.devices(
                conn,
                query=q,
                domain=domain.value if domain else None,
                since=datetime.now(UTC) - LAST_READING_LOOKBACK,
                limit=limit,
                offset=offset,
            )
        return {"items": rows, "total": total}

    return router


def install(app: FastAPI, settings: ApiSettings) -> tuple[str, ...]:
    """Mount the console on the operator API: its pages, static files and JSON helpers.

    Returns the paths served without a key: the pages and their static files, which hold no
    data (every page fetches its data from the API with the key the user signed in with).
    """
    app.include_router(api_router())
    pages = create_router(settings)
    app.include_router(pages)
    # Compressed: the chart library is most of a page's weight, and it halves under gzip.
    static = GZipMiddleware(StaticFiles(directory=HERE / "static"), minimum_size=1024)
    app.mount("/static", static, name="console-static")
    return (*(r.path for r in pages.routes if isinstance(r, APIRoute)), "/static/")
