"""The PDF's text holds every figure, written the reader's way, in French and in English."""

from __future__ import annotations

import io
from typing import Any

import pypdf
import pytest

from services.api.reports import render
from services.api.reports.text import number, word
from shared.factors import load_factors

pytestmark = pytest.mark.unit


def figures() -> dict[str, Any]:
    return {
        "period": {
            "start": "2026-11-01",
            "end": "2026-12-01",
            "timezone": "Europe/Paris",
            "days": 30,
            "generated_at": "2026-12-01T00:05:00+00:00",
        },
        "factors_version": "2026.1",
        "energy": {
            "consumed_kwh": 12345.6,
            "expected_kwh": 11000.2,
            "buildings": [
                {
                    "device_id": f"m-{i}",
                    "name": f"École {i}",
                    "consumed_kwh": 100.0 * i,
                    "expected_kwh": 90.0 * i,
                }
                for i in range(1, 8)
            ],
            "anomalies": 17,
            "excess_kwh": 432.1,
            "excess_cost_eur": 86.42,
            "confirmed": None,
            "top": [
                {
                    "device_id": "m-3",
                    "name": "Gymnase Nord",
                    "episodes": 4,
                    "excess_kwh": 210.5,
                    "excess_cost_eur": 42.1,
                }
            ],
        },
        "waste": {
            "plan_days": 13,
            "weeks": 4.33,
            "planned_km": 712.4,
            "every_bin_tour_km": 63.9,
            "fixed_visits_per_week": 1.3,
            "fixed_km": 359.9,
            "planned_visits": 900,
            "fixed_visits": 845,
            "saved_km": -352.5,
            "saved_fuel_l": -158.6,
            "saved_co2e_kg": -502.8,
            "collections": 1012,
            "overflows": 23,
            "low_fill": 87,
            "useful_fill_pct": 50.0,
        },
        "traffic": {
            "incidents": 9,
            "incidents_previous": 14,
            "congestion_h": 35.5,
            "congestion_h_previous": 41.25,
            "counters": [
                {
                    "device_id": "c-1",
                    "name": "Route de Lyon",
                    "incidents": 9,
                    "congestion_h": 35.5,
                    "incidents_previous": 14,
                    "congestion_h_previous": 41.25,
                }
            ],
        },
        "lighting": {
            "circuits": 20,
            "used_kwh": 4321.7,
            "all_night_kwh": 7012.4,
            "night_used_kwh": 4310.2,
            "saved_kwh": 2702.2,
            "saved_eur": 540.44,
            "saved_co2e_kg": 140.5,
            "cabinets": [],
        },
        "quality": {
            "devices": 180,
            "silent": 3,
            "by_domain": {},
            "deadletters": 2456,
            "deadletters_by_reason": {"schema": 2000, "unknown_device": 456},
            "link_devices": 12,
            "uplinks": 34000,
            "weak_links": 2,
            "weak_rssi_dbm": -115.0,
            "alerts_opened": 31,
            "alerts_acknowledged": 12,
        },
        "footprint": {
            "kwh": 61.23,
            "kg_co2e_energy": 3.18,
            "kg_co2e_manufacture": 24.33,
            "kg_co2e_total": 27.51,
            "coverage": 0.97,
            "components": [{"name": "storage", "cpu_s": 81234.0, "memory_mb": 180.0}],
        },
        "balance": {
            "avoided_kg": 558.5,
            "platform_kg": 27.51,
            "net_kg": 530.99,
            "energy_waste_kg": 22.5,
        },
    }


def text_of(pdf: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_figure_is_in_the_text(lang: str) -> None:
    f = figures()
    factors = load_factors()
    rows = [
        {
            "key": x.key,
            "value": x.value,
            "unit": x.unit,
            "source": x.source,
            "url": x.url,
            "year": x.year,
            "overridden": x.overridden,
        }
        for x in factors.all()
    ]
    text = text_of(render.pdf(f, lang=lang, factors=rows))
    assert word("title", lang) in text
    expected = [
        number(f["energy"]["consumed_kwh"], lang),
        number(f["energy"]["excess_kwh"], lang),
        number(f["energy"]["excess_cost_eur"], lang, digits=2),
        word("not_available", lang),
        number(f["waste"]["saved_km"], lang),
        number(f["waste"]["saved_co2e_kg"], lang),
        number(f["waste"]["fixed_km"], lang),
        number(f["waste"]["every_bin_tour_km"], lang),
        word("fixed_km", lang, visits=number(f["waste"]["fixed_visits_per_week"], lang, digits=2)),
        word("lighting", lang),
        number(f["lighting"]["used_kwh"], lang),
        number(f["lighting"]["all_night_kwh"], lang),
        number(f["lighting"]["saved_kwh"], lang),
        number(f["lighting"]["saved_eur"], lang, digits=2),
        number(f["lighting"]["saved_co2e_kg"], lang),
        number(f["quality"]["deadletters"], lang, digits=0),
        number(f["footprint"]["kg_co2e_total"], lang, digits=2),
        number(f["balance"]["net_kg"], lang, digits=2),
        "Gymnase Nord",
        "Route de Lyon",
        "SELECT",
        factors.version,
    ]
    missing = [e for e in expected if e not in text]
    assert not missing, missing


def test_the_two_languages_differ() -> None:
    f = figures()
    fr, en = (text_of(render.pdf(f, lang=lang, factors=[])) for lang in ("fr", "en"))
    assert "Bilan de la commune" in fr and "balance sheet" in en
    assert "12 345,6" in fr and "12,345.6" in en


def test_pages_as_png() -> None:
    pages = render.pngs(figures(), lang="fr", factors=[])
    assert len(pages) >= 4
    assert all(p.startswith(b"\x89PNG") for p in pages)
