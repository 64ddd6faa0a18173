"""The console's charts and icon in Chromium (#25 item 7): time-axis labels never overlap
whatever the period, the energy chart's expected band never goes below 0 kWh, and the icon
loads without a key."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.console.conftest import Console
from tests.support import RegisteredDevice, wait_for

pytestmark = pytest.mark.e2e

# Draws an hourly series over `days` with the console's own chart (TP.chart, every page has it)
# in a box `width` px wide, then measures each x-axis label as the canvas draws it: its centre
# is the tick's position, its width the text's in the axis font.
AXIS_LABELS = """
const [days, width, done] = arguments;
const el = document.createElement("div");
el.style.width = width + "px";
document.getElementById("main").append(el);
const end = Math.floor(Date.now() / 3600e3) * 3600;
const n = days * 24;
const x = Array.from({ length: n + 1 }, (_, i) => end - (n - i) * 3600);
const data = x.map((_, i) => i % 24);
const u = TP.chart(el, { x, series: [{ label: "kWh", stroke: "#000", data }] });
// uPlot lays its axes out after the current task: measure once it has.
setTimeout(() => {
 try {
  const ax = u.axes[0];
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = Array.isArray(ax.font) ? ax.font[0] : ax.font;
  const ratio = window.devicePixelRatio || 1;
  const labels = [];
  ax._splits.forEach((v, i) => {
    const text = ax._values[i];
    if (text == null || text === "") return;
    const centre = u.valToPos(v, "x");
    const half = ctx.measureText(text).width / ratio / 2;
    labels.push({ ts: v, text, left: centre - half, right: centre + half });
  });
  // Where the plot starts in the chart's box, and the box's width: labels stay within the box.
  const plotLeft = u.bbox.left / ratio;
  const box = el.clientWidth;
  u.destroy();
  el.remove();
  done({ labels, plotLeft, box });
 } catch (e) { done({ error: String(e.stack || e) }); }
}, 0);
"""

# Labels closer than this read as one.
MIN_GAP_PX = 4


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("width", [1200, 360])
@pytest.mark.parametrize("days", [1, 3, 7, 30])
def test_time_axis_labels_never_overlap(console: Console, lang: str, width: int, days: int) -> None:
    # The public page: no key needed, and it loads the same chart code as every page.
    console.open(f"/public?lang={lang}")
    drawn = console.driver.execute_async_script(AXIS_LABELS, days, width)
    assert "error" not in drawn, drawn["error"]
    labels = drawn["labels"]
    assert len(labels) >= 2, drawn
    for a, b in itertools.pairwise(labels):
        assert a["right"] + MIN_GAP_PX <= b["left"], (days, width, lang, a, b)
    # Labels stay inside the chart's box (uPlot centres them on their tick).
    offset = drawn["plotLeft"]
    assert all(
        lab["left"] + offset >= 0 and lab["right"] + offset <= drawn["box"] for lab in labels
    ), drawn
    texts = [lab["text"] for lab in labels]
    assert len(set(texts)) == len(texts), texts  # no two ticks read the same
    step = min(b["ts"] - a["ts"] for a, b in itertools.pairwise(labels))
    if step >= 86400:
        # A day or more apart: the date, not a time of day that would repeat.
        assert all(":" not in t and any(c.isdigit() for c in t) for t in texts), texts
    else:
        assert all(":" in t for t in texts), texts


def test_the_icon_loads_without_a_key(console: Console) -> None:
    console.open("/signin")
    href = console.one("link[rel=icon]").get_attribute("href")
    assert href is not None
    for url in (href, console.base + "/favicon.ico"):
        r = httpx.get(url, follow_redirects=True)
        assert r.status_code == 200, (url, r.status_code)
        assert r.headers["content-type"].startswith("image/svg+xml"), url


# Records the console's charts from now on (the page's own code calls `new uPlot`).
RECORD_CHARTS = """
const Chart = window.uPlot;
window.tpCharts = [];
window.uPlot = class extends Chart {
  constructor(opts, data, target) { super(opts, data, target); window.tpCharts.push(this); }
};
"""


def test_the_energy_chart_draws_the_expected_band_from_zero(
    console: Console,
    admin_key: str,
    api: httpx.Client,
    stack_env: dict[str, str],
    device_factory: Callable[..., RegisteredDevice],
) -> None:
    meter = device_factory("energy", prefix="band")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # A meter at rest at night: its band (expected ± the model's typical error) dips below 0.
    rows = [
        (hour - timedelta(hours=h), 0.0 if h % 2 else 4.0, 0.1 if h % 2 else 4.0)
        for h in range(1, 13)
    ]
    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
        for ts, observed, expected in rows:
            conn.execute(
                "INSERT INTO energy_scores (device_id, ts, observed, expected, lower, upper,"
                " score, is_anomaly) VALUES (%s, %s, %s, %s, %s, %s, 0, false)",
                (meter.id, ts, observed, expected, expected - 1.5, expected + 1.5),
            )
    start = (hour - timedelta(days=1)).isoformat()
    items = api.get(
        f"/v1/energy/meters/{meter.id}/consumption", params={"bucket": "1h", "start": start}
    ).json()["items"]
    assert len(items) == len(rows)
    # The API gives the model's band as it is: below 0 at night (the chart must not draw that).
    assert min(i["lower_kwh"] for i in items) < 0

    console.sign_in(admin_key, f"/energy?meter={meter.id}")
    console.js(RECORD_CHARTS)
    console.js(
        "const s = document.getElementById('days'); s.value = '1';"
        "s.dispatchEvent(new Event('change'));"
    )
    wait_for(lambda: console.js("return window.tpCharts.length") > 0, what="the chart")
    chart: dict[str, Any] = console.js(
        "const u = window.tpCharts[0];"
        "return {labels: u.series.map(s => s.label), data: u.data.map(d => Array.from(d)),"
        " bands: u.bands.map(b => b.series), ymin: u.scales.y.min};"
    )
    upper = chart["labels"].index("Attendu haut")
    lower = chart["labels"].index("Attendu bas")
    assert [upper, lower] in chart["bands"]
    n = len(items)
    assert chart["data"][lower][:n] == [max(0.0, i["lower_kwh"]) for i in items]
    assert chart["data"][upper][:n] == [max(0.0, i["upper_kwh"]) for i in items]
    assert chart["ymin"] >= 0
