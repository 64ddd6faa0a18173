"""The console's navigation lists each registered domain's pages, from its manifest, after the
overview and in registration order; each is served and labelled in the reader's language."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.api.console import i18n
from services.api.console.routes import CONSOLE_PATHS, PAGES, create_router
from services.api.settings import ApiSettings
from shared import domains

pytestmark = pytest.mark.unit

NAV_LINK = re.compile(r'<li><a href="(/[^"]*)"[^>]*>([^<]+)</a></li>')


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(create_router(ApiSettings(dev_mode=True, timezone="Europe/Paris")))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
        yield c


def _domain_pages() -> list[tuple[str, str, str]]:
    return [(p.path, p.template, p.label) for m in domains.registered() for p in m.console]


def test_the_domains_pages_follow_the_overview_in_registration_order() -> None:
    pages = _domain_pages()
    assert pages
    assert list(PAGES[1 : 1 + len(pages)]) == pages
    assert PAGES[0][0] == "/"
    assert {path for path, _, _ in pages} <= CONSOLE_PATHS


@pytest.mark.parametrize("lang", ["fr", "en"])
async def test_the_navigation_links_each_domains_page_with_its_label(
    client: httpx.AsyncClient, lang: str
) -> None:
    translations = i18n.load()[lang]
    r = await client.get("/", params={"lang": lang})
    assert r.status_code == 200
    links = NAV_LINK.findall(r.text)
    for path, template, label in _domain_pages():
        assert (path, translations.gettext(label)) in links, path
        page = await client.get(path, params={"lang": lang})
        assert page.status_code == 200, path
        assert f'href="{path}" aria-current="page"' in page.text, template
