"""The register's document without a stack: both languages complete, the page's words
translated, districts never carrying a device."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.api import register
from services.api.console import i18n
from shared.algorithms import Figure, Method
from shared.retention import PLATFORM_CLASSES, RetentionSettings
from tests.shared.test_algorithms import declared

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _document(lang: str, **kwargs: object) -> dict:
    rows = [{"declaration": a.to_json(), "changed_at": AT} for a in declared()]
    args: dict = {
        "lang": lang,
        "declarations": rows,
        "latest_quality": {},
        "texts": {},
        "texts_updated_at": None,
        "default_town": "Sainte-Claire",
        "retention_settings": RetentionSettings(),
        "sensors": [],
        "links": {},
    }
    args.update(kwargs)
    return register.document(**args)


@pytest.mark.parametrize("lang", register.LANGUAGES)
def test_every_field_of_every_algorithm_is_filled_in_each_language(lang: str) -> None:
    doc = _document(lang)
    assert [a["id"] for a in doc["algorithms"]] == sorted(a.id for a in declared())
    for a in doc["algorithms"]:
        for field in ("name", "purpose", "decides", "method", "human_oversight", "automation"):
            assert a[field].strip(), (a["id"], field)
        assert a["individual_decisions_per_year"] == 0 and a["personal_data"] is False
        assert a["quality"] == {
            "evaluated": False,
            "status": register.phrase(lang, "not_evaluated"),
        }
        for r in a["retention"]:
            assert r["description"] and r["days"] == RetentionSettings().days(r["class"])
    assert doc["administration"] == {
        "name": "Sainte-Claire",
        "service": None,
        "contact": None,
        "updated_at": AT,
    }


def test_the_two_languages_differ_where_words_are_shown() -> None:
    fr, en = _document("fr"), _document("en")
    assert fr["legal_basis"] != en["legal_basis"] and "L312-1-3" in fr["legal_basis"]
    for a_fr, a_en in zip(fr["algorithms"], en["algorithms"], strict=True):
        assert a_fr["name"] != a_en["name"]
        assert [r["description"] for r in a_fr["retention"]] != [
            r["description"] for r in a_en["retention"]
        ] or not a_fr["retention"]


def test_every_retention_class_is_described_in_french() -> None:
    assert set(register.RETENTION_FR) == {c.name for c in PLATFORM_CLASSES}


def test_the_page_translates_every_type_and_figure_name() -> None:
    # Values, not msgids the extractor finds: each must be in both catalogues, readable.
    catalogues = {lang: i18n.messages(tr) for lang, tr in i18n.load().items()}
    # What `townpulse evaluate --record` sends besides the figures: baselines and threshold.
    extras = ["baseline", "horizon", "threshold_basis", "fixed", "file_optimised"]
    extras += ["last_value", "previous_day", "previous_week", "time_of_week_mean"]
    for word in [*(m.value for m in Method), *(f.value for f in Figure), *extras]:
        for lang in i18n.LANGUAGES:
            assert "_" not in catalogues[lang][word], (lang, word)


def test_the_last_evaluation_shows_only_the_figures_that_apply() -> None:
    quality = {
        "energy.forecast": {
            "evaluated_at": AT,
            "recorded_at": AT,
            "dataset": "cambridge-buildings",
            "command": "townpulse evaluate ...",
            "figures": {"forecast_error_ratio": 0.82, "recall": 0.5, "baseline": "last_value"},
        }
    }
    doc = _document("en", latest_quality=quality)
    shown = {a["id"]: a["quality"] for a in doc["algorithms"]}["energy.forecast"]
    assert shown["figures"] == {"forecast_error_ratio": 0.82, "baseline": "last_value"}
    assert shown["evaluated"] is True and shown["dataset"] == "cambridge-buildings"


def test_districts_group_domains_and_metrics() -> None:
    rows = [
        {
            "basis": "grid",
            "district": "cell 45.90N 6.12E (0.01°)",
            "domain": "energy",
            "metric": None,
            "devices": 2,
        },
        {"basis": "zone", "district": "market", "domain": "waste", "metric": None, "devices": 3},
        {
            "basis": "zone",
            "district": "market",
            "domain": "traffic",
            "metric": "vehicles",
            "devices": 1,
        },
        {"basis": "zone", "district": "market", "domain": "traffic", "metric": None, "devices": 1},
    ]
    out = register.sensor_map(rows, lang="fr")
    assert [(d["basis"], d["district"]) for d in out] == [
        ("zone", "market"),
        ("grid", "cell 45.90N 6.12E (0.01°)"),
    ]
    assert out[0]["domains"] == [
        {"domain": "traffic", "devices": 1, "metrics": [{"metric": "vehicles", "devices": 1}]},
        {"domain": "waste", "devices": 3, "metrics": []},
    ]


@pytest.mark.parametrize("bad", ["a\x00b", "right\u202eleft", "x" * 201])
def test_texts_unfit_to_publish_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        register.clean_text(bad, max_length=200)
