"""Page weight and time to first render of the operator console, in Debian's Chromium.

Needs the local stack with the simulator's town (`make up`). Each page is loaded `--runs` times
with the browser cache disabled (a first visit, the worst case), signed in with the admin key.
Reported per page, median over the runs: bytes transferred for the page itself (HTML, CSS,
scripts) and for its data (the API's JSON), the first contentful paint, and the time until the
page's data is on screen (the console's `tp-ready` mark). With `--screenshots DIR` it also saves
a screenshot of every page once its data is shown (the README shows them).

    .venv/bin/python -m bench.console_pages [--runs 5] [--screenshots docs/screenshots]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from bench.common import run_meta, write_result
from townpulse.simulator.town import build_town
from townpulse.stack import Stack, read_env_file

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
KEY_STORAGE = "townpulse.apiKey"
READY_TIMEOUT_S = 60.0
# Screenshots show the whole page, down to this height (the devices list goes on for a while).
SCREENSHOT_MAX_HEIGHT = 1800


def pages() -> dict[str, str]:
    """Page name -> path; the waste page plans from the simulated town's depot."""
    lat, lon = build_town(energy=0, waste=0, traffic=0).depot
    return {
        "overview": "/",
        "energy": "/energy",
        "waste": f"/waste?depot={lat},{lon}&vehicles=2",
        "traffic": "/traffic",
        "alerts": "/alerts?state=",
        "devices": "/devices",
        "webhooks": "/webhooks",
        "integrations": "/integrations",
        "profiles": "/profiles?profile=milesight-iot-em310-udl",
        "public": "/public",
        "signin": "/signin",
    }


# Read in the page once it is ready: what crossed the network and when things happened.
MEASURE_JS = """
const nav = performance.getEntriesByType('navigation')[0];
const res = performance.getEntriesByType('resource');
const isData = (r) => r.initiatorType === 'fetch' || r.initiatorType === 'xmlhttprequest';
const sum = (xs) => xs.reduce((a, r) => a + r.transferSize, 0);
const fcp = performance.getEntriesByName('first-contentful-paint')[0];
const ready = performance.getEntriesByName('tp-ready')[0];
return {
  asset_bytes: nav.transferSize + sum(res.filter((r) => !isData(r))),
  data_bytes: sum(res.filter(isData)),
  requests: 1 + res.length,
  first_contentful_paint_ms: fcp ? fcp.startTime : null,
  data_ready_ms: ready ? ready.startTime : null,
};
"""


def _driver() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # A first visit every time: nothing comes from the browser's cache.
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return d


def _wait_ready(d: webdriver.Chrome) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if d.execute_script("return document.documentElement.dataset.ready === 'true'"):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{d.current_url} not ready after {READY_TIMEOUT_S:.0f} s")


def _screenshot(d: webdriver.Chrome, path: Path) -> None:
    """The whole page (not only the window), as PNG, through the DevTools protocol."""
    size = d.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {
        "x": 0,
        "y": 0,
        # The window's width, not the content's: capturing beyond the viewport drops the
        # scroll bar, and the page is laid out again that much wider.
        "width": d.execute_script("return window.innerWidth"),
        "height": min(size["height"], SCREENSHOT_MAX_HEIGHT),
        "scale": 1,
    }
    shot = d.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return round(statistics.median(values), 1) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args()

    env = read_env_file(Stack().stack_env_file)
    base = env["API_URL"]
    key = Path(env["ADMIN_API_KEY_FILE"]).read_text().strip()
    d = _driver()
    results: dict[str, Any] = {}
    try:
        d.get(base + "/signin?lang=fr")
        for name, page_path in pages().items():
            runs = []
            for _ in range(args.runs):
                # Signed in as the sign-in page leaves it: the key in this tab's sessionStorage.
                d.get(base + "/signin")
                d.execute_script(f"sessionStorage.setItem('{KEY_STORAGE}', arguments[0])", key)
                d.get(base + page_path)
                _wait_ready(d)
                runs.append(d.execute_script(MEASURE_JS))
            results[name] = {
                "asset_kb": round((_median(runs, "asset_bytes") or 0) / 1024, 1),
                "data_kb": round((_median(runs, "data_bytes") or 0) / 1024, 1),
                "requests": _median(runs, "requests"),
                "first_contentful_paint_ms": _median(runs, "first_contentful_paint_ms"),
                "data_ready_ms": _median(runs, "data_ready_ms"),
                "runs": args.runs,
            }
            print(name, results[name])
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                _screenshot(d, args.screenshots / f"{name}.png")
    finally:
        d.quit()
    path = write_result(
        "console_pages",
        {
            "benchmark": "console_pages",
            "meta": run_meta(),
            "browser": "Debian chromium, headless, cache disabled, 1280x900",
            "pages": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
