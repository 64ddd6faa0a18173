"""The report as a printable PDF (A4 pages drawn with matplotlib), and its pages as PNG.

matplotlib is already a dependency (charts); its PDF backend writes the text as TrueType
(fonttype 42), so the text can be searched, copied and extracted.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from services.api.reports.figures import QUERIES
from services.api.reports.text import method, number, word

# fontTools logs every table it prunes while embedding the fonts: a hundred lines per report.
logging.getLogger("fontTools").setLevel(logging.WARNING)

A4 = (8.27, 11.69)  # inches
LEFT, RIGHT, TOP, BOTTOM = 0.08, 0.92, 0.94, 0.06
LINE = 0.018  # fraction of the page height per 9-point line
# Methods in the order the appendix numbers them; the figures' footnote marks are these numbers.
ORDER = (*QUERIES, "footprint", "balance")


def mark(key: str) -> str:
    return f"[{ORDER.index(key) + 1}]"


class Page:
    """One A4 page written top to bottom."""

    def __init__(self, pages: list[Figure]) -> None:
        self.fig = plt.figure(figsize=A4)
        pages.append(self.fig)
        self.y = TOP

    def room(self, lines: float) -> bool:
        return self.y - lines * LINE >= BOTTOM

    def text(self, s: str, *, size: float = 9, bold: bool = False, x: float = LEFT) -> None:
        self.fig.text(x, self.y, s, fontsize=size, weight="bold" if bold else "normal", va="top")
        self.y -= LINE * size / 9 * 1.25

    def heading(self, s: str) -> None:
        self.y -= LINE * 0.6
        self.text(s, size=13, bold=True)
        self.y -= LINE * 0.3

    def row(self, cells: Sequence[str], widths: Sequence[float], *, bold: bool = False) -> None:
        x = LEFT
        for cell, w in zip(cells, widths, strict=True):
            self.fig.text(x, self.y, cell, fontsize=8.5, va="top", weight="bold" if bold else None)
            x += w
        self.y -= LINE

    def figure_line(self, label: str, value: str, key: str) -> None:
        self.row([label, value, mark(key)], [0.56, 0.22, 0.06])

    def chart(self, height: float, draw: Callable[[Any], None]) -> None:
        # Room on the left for the bars' labels (building names).
        ax = self.fig.add_axes((LEFT + 0.2, self.y - height, RIGHT - LEFT - 0.22, height - 0.02))
        draw(ax)
        self.y -= height + LINE


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def render(
    figures: Mapping[str, Any], *, lang: str, factors: Sequence[Mapping[str, Any]]
) -> list[Figure]:
    """The report's pages (matplotlib figures; the caller saves and closes them)."""
    pages: list[Figure] = []

    def n(v: float | None, d: int = 1) -> str:
        return number(v, lang, digits=d)

    p = Page(pages)
    per = figures["period"]
    p.text(word("title", lang), size=20, bold=True)
    p.text(word("period", lang, start=per["start"], end=per["end"], tz=per["timezone"]), size=10)
    p.text(word("generated", lang, at=per["generated_at"][:16], version=figures["factors_version"]))

    e, w, t, q = figures["energy"], figures["waste"], figures["traffic"], figures["quality"]
    fp, b = figures.get("footprint"), figures["balance"]
    p.heading(word("summary", lang))
    p.figure_line(word("consumed", lang), f"{n(e['consumed_kwh'])} kWh", "energy_buildings")
    p.figure_line(word("excess_kwh", lang), f"{n(e['excess_kwh'])} kWh", "energy_excess")
    p.figure_line(word("saved_km", lang), f"{n(w['saved_km'])} km", "waste_plans")
    p.figure_line(word("incidents", lang), n(t["incidents"], 0), "traffic_counters")
    p.figure_line(word("avoided", lang), f"{n(b['avoided_kg'])} kg", "waste_plans")
    p.figure_line(word("platform", lang), f"{n(b['platform_kg'], 2)} kg", "footprint")
    p.figure_line(word("net", lang), f"{n(b['net_kg'], 2)} kg", "balance")

    p.heading(word("balance", lang))
    p.figure_line(word("avoided", lang), f"{n(b['avoided_kg'])} kg CO2e", "waste_plans")
    p.figure_line(word("platform", lang), f"{n(b['platform_kg'], 2)} kg CO2e", "footprint")
    p.figure_line(word("net", lang), f"{n(b['net_kg'], 2)} kg CO2e", "balance")
    p.figure_line(word("energy_waste_co2e", lang), f"{n(b['energy_waste_kg'])} kg CO2e", "balance")

    def balance_chart(ax: Any) -> None:
        values = [b["avoided_kg"], b["platform_kg"] or 0.0]
        ax.barh(
            [word("avoided", lang), word("platform", lang)], values, color=["#2a9d8f", "#e76f51"]
        )
        ax.set_xlabel("kg CO2e")

    p.chart(0.16, balance_chart)

    # Energy.
    p = Page(pages)
    p.heading(word("energy", lang))
    p.figure_line(word("consumed", lang), f"{n(e['consumed_kwh'])} kWh", "energy_buildings")
    p.figure_line(word("expected", lang), f"{n(e['expected_kwh'])} kWh", "energy_buildings")
    p.figure_line(word("anomalies", lang), n(e["anomalies"], 0), "energy_anomalies")
    p.figure_line(word("excess_kwh", lang), f"{n(e['excess_kwh'])} kWh", "energy_excess")
    p.figure_line(word("excess_cost", lang), f"{n(e['excess_cost_eur'], 2)} EUR", "energy_excess")
    confirmed = word("not_available", lang) if e["confirmed"] is None else n(e["confirmed"], 0)
    p.figure_line(word("confirmed", lang), confirmed, "energy_anomalies")
    buildings = sorted(e["buildings"], key=lambda x: -x["consumed_kwh"])[:20]
    if buildings:

        def energy_chart(ax: Any) -> None:
            names = [_short(x["name"]) for x in buildings]
            ys = list(range(len(names)))
            ax.barh(
                [y + 0.2 for y in ys],
                [x["consumed_kwh"] for x in buildings],
                0.4,
                label=word("consumed", lang),
                color="#264653",
            )
            ax.barh(
                [y - 0.2 for y in ys],
                [x["expected_kwh"] for x in buildings],
                0.4,
                label=word("expected", lang),
                color="#a8dadc",
            )
            ax.set_yticks(ys, names, fontsize=7)
            ax.invert_yaxis()
            ax.legend(fontsize=7)
            ax.set_title(word("chart_energy", lang), fontsize=9)

        p.chart(min(0.45, 0.05 + 0.022 * len(buildings)), energy_chart)
    p.text(word("top_buildings", lang), bold=True)
    widths = [0.42, 0.14, 0.18, 0.16]
    p.row([word("building", lang), word("episodes", lang), "kWh", "EUR"], widths, bold=True)
    for x in e["top"]:
        p.row(
            [
                _short(x["name"], 40),
                n(x["episodes"], 0),
                n(x["excess_kwh"]),
                n(x["excess_cost_eur"], 2),
            ],
            widths,
        )
    if not e["top"]:
        p.text(word("none", lang))

    # Waste.
    p = Page(pages)
    p.heading(word("waste", lang))
    p.figure_line(
        word("plan_days", lang),
        f"{n(w['plan_days'], 0)} / {figures['period']['days']}",
        "waste_plans",
    )
    p.figure_line(word("plan_weeks", lang), n(w["weeks"], 2), "waste_plans")
    p.figure_line(word("planned_km", lang), f"{n(w['planned_km'])} km", "waste_plans")
    p.figure_line(
        word("fixed_km", lang, visits=n(w["fixed_visits_per_week"], 2)),
        f"{n(w['fixed_km'])} km",
        "waste_plans",
    )
    p.figure_line(word("every_bin_tour_km", lang), f"{n(w['every_bin_tour_km'])} km", "waste_plans")
    p.figure_line(
        word("bins_emptied", lang),
        f"{n(w['planned_visits'], 0)} / {n(w['fixed_visits'], 0)}",
        "waste_plans",
    )
    p.figure_line(word("saved_km", lang), f"{n(w['saved_km'])} km", "waste_plans")
    p.figure_line(word("saved_fuel", lang), f"{n(w['saved_fuel_l'])} l", "waste_plans")
    p.figure_line(word("saved_co2e", lang), f"{n(w['saved_co2e_kg'])} kg", "waste_plans")
    p.figure_line(word("collections", lang), n(w["collections"], 0), "waste_collections")
    p.figure_line(word("overflows", lang), n(w["overflows"], 0), "waste_collections")
    p.figure_line(
        word("low_fill", lang, pct=n(w["useful_fill_pct"], 0)),
        n(w["low_fill"], 0),
        "waste_collections",
    )

    def waste_chart(ax: Any) -> None:
        labels = [word("planned_km", lang), word("fixed_short", lang)]
        ax.bar(labels, [w["planned_km"], w["fixed_km"]], color=["#2a9d8f", "#8d99ae"])
        ax.set_ylabel("km")
        ax.set_title(word("chart_waste", lang), fontsize=9)

    p.chart(0.2, waste_chart)

    # Traffic.
    p.heading(word("traffic", lang))
    prev = word("previous", lang)
    p.figure_line(word("incidents", lang), n(t["incidents"], 0), "traffic_counters")
    p.figure_line(
        f"{word('incidents', lang)} ({prev})", n(t["incidents_previous"], 0), "traffic_counters"
    )
    p.figure_line(word("congestion_h", lang), n(t["congestion_h"]), "traffic_counters")
    p.figure_line(
        f"{word('congestion_h', lang)} ({prev})", n(t["congestion_h_previous"]), "traffic_counters"
    )
    widths = [0.34, 0.12, 0.14, 0.14, 0.14]
    p.row(
        [word("counter", lang), word("incidents", lang), prev, "h", f"h ({prev})"],
        widths,
        bold=True,
    )
    for c in t["counters"][:12]:
        p.row(
            [
                _short(c["name"], 34),
                n(c["incidents"], 0),
                n(c["incidents_previous"], 0),
                n(c["congestion_h"]),
                n(c["congestion_h_previous"]),
            ],
            widths,
        )
    counters = t["counters"][:20]
    if counters and p.room(14):

        def traffic_chart(ax: Any) -> None:
            xs = list(range(len(counters)))
            ax.bar(
                [x - 0.2 for x in xs],
                [c["incidents"] for c in counters],
                0.4,
                label=word("incidents", lang),
                color="#e76f51",
            )
            ax.bar(
                [x + 0.2 for x in xs],
                [c["incidents_previous"] for c in counters],
                0.4,
                label=prev,
                color="#f4a261",
            )
            ax.set_xticks(
                xs, [_short(c["name"], 14) for c in counters], rotation=45, ha="right", fontsize=6
            )
            ax.legend(fontsize=7)
            ax.set_title(word("chart_traffic", lang), fontsize=9)

        p.chart(min(0.22, p.y - BOTTOM - 0.06), traffic_chart)

    # Public lighting.
    li = figures.get("lighting")
    if li is not None:
        if not p.room(12):
            p = Page(pages)
        p.heading(word("lighting", lang))
        p.figure_line(word("lighting_used", lang), f"{n(li['used_kwh'])} kWh", "lighting_circuits")
        p.figure_line(
            word("lighting_all_night", lang), f"{n(li['all_night_kwh'])} kWh", "lighting_circuits"
        )
        p.figure_line(
            word("lighting_saved", lang), f"{n(li['saved_kwh'])} kWh", "lighting_circuits"
        )
        p.figure_line(
            word("lighting_saved_eur", lang), f"{n(li['saved_eur'], 2)} EUR", "lighting_circuits"
        )
        p.figure_line(
            word("lighting_saved_co2e", lang),
            f"{n(li['saved_co2e_kg'])} kg CO2e",
            "lighting_circuits",
        )

    # Data quality and footprint.
    p = Page(pages)
    p.heading(word("quality", lang))
    p.figure_line(word("devices", lang), n(q["devices"], 0), "quality_devices")
    p.figure_line(word("silent", lang), n(q["silent"], 0), "quality_devices")
    p.figure_line(word("deadletters", lang), n(q["deadletters"], 0), "quality_deadletters")
    for reason, count in list(q["deadletters_by_reason"].items())[:10]:
        p.row([f"    {_short(reason, 50)}", n(count, 0), ""], [0.56, 0.22, 0.06])
    p.figure_line(word("links", lang), n(q["link_devices"], 0), "quality_links")
    p.figure_line(
        word("weak_links", lang, dbm=n(q["weak_rssi_dbm"], 0)),
        n(q["weak_links"], 0),
        "quality_links",
    )
    p.figure_line(
        word("alerts", lang),
        f"{n(q['alerts_opened'], 0)} ({n(q['alerts_acknowledged'], 0)})",
        "alerts",
    )

    p.heading(word("footprint", lang))
    if fp is None:
        p.text(word("not_available", lang))
    else:
        p.figure_line(word("fp_kwh", lang), f"{n(fp['kwh'], 2)} kWh", "footprint")
        p.figure_line(word("fp_energy", lang), f"{n(fp['kg_co2e_energy'], 2)} kg", "footprint")
        p.figure_line(
            word("fp_manufacture", lang), f"{n(fp['kg_co2e_manufacture'], 2)} kg", "footprint"
        )
        p.figure_line(word("fp_total", lang), f"{n(fp['kg_co2e_total'], 2)} kg", "footprint")
        p.figure_line(word("fp_coverage", lang), f"{n(100 * fp['coverage'], 0)} %", "footprint")
        widths = [0.4, 0.2, 0.2]
        p.row(
            [word("component", lang), word("cpu_s", lang), word("memory", lang)], widths, bold=True
        )
        for c in fp["components"]:
            p.row([c["name"], n(c["cpu_s"], 0), n(c["memory_mb"], 0)], widths)

    # Appendix: every method, its SQL, the factors.
    p = Page(pages)
    p.heading(word("appendix", lang))
    for key in ORDER:
        sql = QUERIES.get(key, "").strip().splitlines()
        if not p.room(3 + len(_wrap(method(key, lang), 110)) + len(sql) * 0.8):
            p = Page(pages)
        p.text(f"{mark(key)} {key}", bold=True)
        for line in _wrap(method(key, lang), 110):
            p.text(line, size=8)
        for line in sql:
            p.text(line, size=6.5, x=LEFT + 0.02)
        if key == "footprint" and fp is not None:
            for name, formula in fp.get("method", {}).items():
                lines = _wrap(f"{name}: {formula}", 130)
                if not p.room(len(lines) + 1):
                    p = Page(pages)
                for line in lines:
                    p.text(line, size=6.5, x=LEFT + 0.02)
    if not p.room(3 + len(factors) * 2):
        p = Page(pages)
    p.heading(word("factors", lang))
    for f in factors:
        p.text(
            f"{f['key']} = {number(f['value'], lang, digits=4)} {f['unit']}"
            f"{' *' if f.get('overridden') else ''}",
            size=8,
            bold=True,
        )
        p.text(f"{f['source']} ({f['year']}) {f['url']}", size=7)
        if not p.room(2):
            p = Page(pages)
    for i, fig in enumerate(pages):
        fig.text(RIGHT, 0.03, word("page", lang, n=i + 1), fontsize=7, ha="right")
    return pages


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def pdf(figures: Mapping[str, Any], *, lang: str, factors: Sequence[Mapping[str, Any]]) -> bytes:
    pages = render(figures, lang=lang, factors=factors)
    buf = io.BytesIO()
    # Text as TrueType, not Type 3 glyph drawings: a reader can search and copy the figures.
    with plt.rc_context({"pdf.fonttype": 42}), PdfPages(buf, metadata=_metadata(figures)) as doc:
        for fig in pages:
            doc.savefig(fig)
            plt.close(fig)
    return buf.getvalue()


def pngs(
    figures: Mapping[str, Any], *, lang: str, factors: Sequence[Mapping[str, Any]], dpi: int = 80
) -> list[bytes]:
    """The same pages as images (the docs' screenshots)."""
    out = []
    for fig in render(figures, lang=lang, factors=factors):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
        out.append(buf.getvalue())
    return out


def _metadata(figures: Mapping[str, Any]) -> dict[str, Any]:
    per = figures["period"]
    return {"Title": f"TownPulse {per['start']} - {per['end']}", "Creator": "TownPulse"}
