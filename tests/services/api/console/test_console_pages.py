"""The console's pages without a stack: every page renders in both languages, every string the
pages show is translated, nothing is fetched from another host."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.api.console import i18n
from services.api.console.routes import HERE, PAGES, SECURITY_HEADERS, after_signin, create_router
from services.api.settings import ApiSettings

pytestmark = pytest.mark.unit

ALL_PAGES = [path for path, _, _ in PAGES] + ["/signin", "/public"]


APP = FastAPI()
APP.include_router(create_router(ApiSettings(dev_mode=True, timezone="Europe/Paris")))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # In process (httpx's ASGI transport): the pages need no database, no broker.
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
        yield c


@pytest.mark.parametrize("path", ALL_PAGES)
async def test_every_page_renders_in_french_by_default_and_in_english_on_request(
    client: httpx.AsyncClient, path: str
) -> None:
    # An English browser still gets French: the town's language until the user picks another.
    fr = await client.get(path, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert fr.status_code == 200
    assert '<html lang="fr" data-tz="Europe/Paris"' in fr.text
    assert "Aller au contenu" in fr.text
    en = await client.get(path, params={"lang": "en"})
    assert '<html lang="en"' in en.text and "Skip to content" in en.text
    # The choice is remembered in a cookie the page's scripts cannot read.
    cookie = en.headers["set-cookie"]
    assert "tp_lang=en" in cookie and "HttpOnly" in cookie


async def test_language_choice_sticks_until_changed(client: httpx.AsyncClient) -> None:
    client.cookies.set("tp_lang", "en")
    assert '<html lang="en"' in (await client.get("/")).text
    client.cookies.set("tp_lang", "xx")
    assert '<html lang="fr"' in (await client.get("/")).text


@pytest.mark.parametrize("path", ALL_PAGES)
async def test_pages_allow_scripts_from_this_origin_only(
    client: httpx.AsyncClient, path: str
) -> None:
    r = await client.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name] == value
    # No inline script runs: the only inline block is JSON data.
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", r.text)
    assert inline == [' type="application/json" id="tp-i18n"']


def test_every_string_of_the_pages_has_a_french_translation() -> None:
    msgids = i18n.extract()
    assert len(msgids) > 150  # the extractor found the templates and the scripts
    french = i18n.load()["fr"]
    untranslated = [m for m in msgids if french.gettext(m) == m and m not in SAME_IN_FRENCH]
    assert untranslated == []


# Words spelt the same in both languages.
SAME_IN_FRENCH = {
    "Actions",
    "Administration",
    "Anomalies",
    "Contact",
    "Date",
    "Description",
    "Distance",
    "Latitude",
    "Longitude",
    "Occurrences",
    "Secret",
    "URL",
    "Webhooks",
}


def test_the_console_reaches_no_outside_host() -> None:
    files = [*HERE.glob("templates/*.html"), *HERE.glob("static/*.js"), *HERE.glob("static/*.css")]
    assert len(files) >= 15
    for path in files:
        text = Path(path).read_text()
        # The SVG namespace is a name, not an address the browser fetches.
        text = text.replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path


def test_signin_redirect_stays_on_this_site() -> None:
    script = (HERE / "static" / "signin.js").read_text()
    # An attacker's ?next=//evil.example must not take the user (and the fresh key) away: the
    # script follows what the server checked (services/api/console/routes.after_signin), never
    # the page's own query string.
    assert "form.dataset.next" in script
    assert "location.search" not in script


@pytest.mark.parametrize(
    "next_",
    [
        "/%5Cevil.example",
        "/\\evil.example",
        "//evil.example",
        "https://evil.example/",
        "/\tevil",
        "javascript:alert(1)",
        "/nowhere",
        "",
        None,
    ],
)
def test_signin_leads_elsewhere_only_to_the_overview(next_: str | None) -> None:
    assert after_signin(next_) == "/"


def test_signin_leads_back_to_a_console_page() -> None:
    assert after_signin("/alerts?state=open#top") == "/alerts?state=open"
    assert after_signin("/public") == "/public"


@pytest.mark.parametrize(
    ("lang", "grey"),
    [("fr", "Bande grise : la bande attendue"), ("en", "Grey band: the expected band")],
)
async def test_the_energy_caption_calls_the_grey_band_the_expected_band(
    client: httpx.AsyncClient, lang: str, grey: str
) -> None:
    # The grey band is the detector's (expected ± its error, services/energy/adapters/db.py's
    # lower_kwh/upper_kwh), not the forecast's interval, which is brown.
    text = (await client.get("/energy", params={"lang": lang})).text
    assert grey in text
