"""A real browser (Debian's Chromium, driven by Selenium through Debian's chromedriver) against
the running stack. Nothing is downloaded: the browser and its driver come from apt, axe-core
from the npm install in deploy/install.sh."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from tests.support import wait_for
from townpulse.simulator.town import build_town
from townpulse.stack import REPO, Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AXE = REPO / "deploy" / "console" / "node_modules" / "axe-core" / "axe.min.js"
KEY_STORAGE = "townpulse.apiKey"
# Two days of backfill at speed 720 take about 4 minutes; a busy machine may need more.
TOWN_TIMEOUT_S = 900


@pytest.fixture(scope="session")
def driver() -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.fail(f"{path} missing: run `make install` (apt: chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=en-US",  # the console must still answer in French
    ):
        options.add_argument(arg)
    # The driver's path is given: Selenium Manager has nothing to look up or download.
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


@dataclass
class Console:
    """The console in the browser: open pages, sign in, wait for what a user waits for."""

    driver: webdriver.Chrome
    base: str

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_for(
            lambda: self.js("return document.documentElement.dataset.ready === 'true'"),
            timeout=60,
            what="the page's data",
        )

    def sign_in(self, key: str, path: str = "/") -> None:
        """Use the sign-in form, as a person would."""
        self.driver.get(self.base + "/signin?next=" + path)
        self.js(f"sessionStorage.removeItem('{KEY_STORAGE}')")
        field = self.one("#api-key")
        field.clear()
        field.send_keys(key)
        self.one("#signin-form button[type=submit]").click()
        wait_for(lambda: "/signin" not in self.driver.current_url, timeout=30, what="sign-in")
        self.wait_ready()

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def one(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        # Pages redraw lists in place: an element found a moment ago may be gone; find it again.
        for _ in range(5):
            try:
                return str(self.one(css).text)
            except StaleElementReferenceException:
                continue
        return str(self.one(css).text)

    def status(self) -> str:
        return self.text("#status")

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's WCAG 2 A/AA violations on the current page."""
        if not AXE.exists():
            pytest.fail(f"{AXE} missing: run `make install` (npm ci in deploy/console)")
        self.js(AXE.read_text())
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})"
            ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))"
            ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e)}]));"
        )
        return list(result)

    def fetch_status(self, method: str, path: str) -> int:
        """The status of a request made from the page with the signed-in key."""
        return int(
            self.driver.execute_async_script(
                "const [m, p, done] = arguments;"
                f"fetch(p, {{method: m, headers: {{Authorization: 'Bearer ' + "
                f"sessionStorage.getItem('{KEY_STORAGE}'), 'Content-Type': 'application/json'}},"
                " body: m === 'GET' ? undefined : '{}'}).then(r => done(r.status));",
                method,
                path,
            )
        )


@pytest.fixture
def console(driver: webdriver.Chrome, stack_env: dict[str, str]) -> Iterator[Console]:
    c = Console(driver, stack_env["API_URL"])
    yield c
    # Each test starts signed out, in French.
    driver.get(c.base + "/signin?lang=fr")
    c.js("sessionStorage.clear()")


@pytest.fixture
def key_factory(api: httpx.Client) -> Iterator[Callable[[str], str | None]]:
    """API keys of a role, revoked afterwards; None if this API has no such role."""
    made: list[str] = []

    def make(role: str) -> str | None:
        r = api.post(
            "/v1/api-keys", json={"name": f"console-test-{uuid.uuid4().hex[:6]}", "role": role}
        )
        if r.status_code == 422:
            return None
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
        return str(r.json()["key"])

    yield make
    for key_id in made:
        api.delete(f"/v1/api-keys/{key_id}")


@pytest.fixture(scope="session")
def simulated_town(
    stack: Stack, stack_env: dict[str, str], admin_key: str
) -> Iterator[dict[str, Any]]:
    """The simulator's town with bins that have reported: started here if `make up` did not
    (and then stopped again at the end, so later tests run on the quiet stack they expect)."""
    started = stack.pid("simulator") is None
    if started:
        stack.start_simulator()
    town = build_town()
    with httpx.Client(
        base_url=stack_env["API_URL"], headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    ) as api:

        def bins() -> int:
            r = api.get("/v1/waste/bins", params={"limit": 10000})
            ids = {b["id"] for b in r.json()["items"]} if r.status_code == 200 else set()
            return len(ids & {d.id for d in town.devices})

        wait_for(lambda: bins() >= 100, timeout=TOWN_TIMEOUT_S, interval=5, what="the town's bins")
    lat, lon = town.depot
    yield {"depot": f"{lat},{lon}", "town": town}
    if started:
        stack.stop("simulator")


def mosquitto_pub() -> str:
    path = shutil.which("mosquitto_pub")
    if path is None:
        pytest.fail("mosquitto_pub missing: run `make install` (apt: mosquitto-clients)")
    return path
