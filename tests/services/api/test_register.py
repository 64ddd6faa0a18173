"""The public register of algorithms and sensors against the real stack: no key, French and
English, every algorithm the services declare, quality figures once recorded, the admin's texts,
and sensors counted per district without a device id or position."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from services.api.register import grid_cell
from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from testing.alerts_support import produce_readings
from tests.shared.test_algorithms import declared
from tests.support import wait_for

pytestmark = pytest.mark.integration

GRID_DEG = 0.01  # the API's default register_grid_deg


@pytest.fixture
def public(stack_env: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack_env["API_URL"], timeout=30) as client:
        yield client


@pytest.fixture
def db(stack_env: dict[str, str]) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True, row_factory=dict_row) as c:
        yield c


def _register(public: httpx.Client, lang: str = "fr") -> dict[str, Any]:
    r = public.get("/register/", params={"lang": lang})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in doc["algorithms"]}


def test_the_register_needs_no_key_and_speaks_french_and_english(public: httpx.Client) -> None:
    fr, en = _register(public, "fr"), _register(public, "en")
    assert (fr["lang"], en["lang"]) == ("fr", "en")
    names_fr = {a["id"]: a["name"] for a in fr["algorithms"]}
    names_en = {a["id"]: a["name"] for a in en["algorithms"]}
    assert names_fr.keys() == names_en.keys()
    assert all(names_fr[k] != names_en[k] for k in names_fr)
    assert public.get("/register/", params={"lang": "de"}).status_code == 422

    page_fr = public.get("/public/register")
    assert page_fr.status_code == 200
    assert '<html lang="fr"' in page_fr.text and "Registre des algorithmes" in page_fr.text
    page_en = public.get("/public/register", params={"lang": "en"})
    assert "Register of algorithms and sensors" in page_en.text
    for algorithm in en["algorithms"]:
        assert f'id="{algorithm["id"]}"' in page_en.text
    # The open-data page leads to it.
    assert 'href="/public/register"' in public.get("/public").text


def test_every_algorithm_the_services_run_is_listed(
    public: httpx.Client, db: psycopg.Connection[dict[str, Any]]
) -> None:
    # Built here from the domains' own declarations, with the stack's default settings.
    expected = {a.id: a for a in declared()}
    for lang in ("fr", "en"):
        listed = _by_id(_register(public, lang))
        assert listed.keys() == expected.keys()
        for algorithm_id, a in expected.items():
            assert (listed[algorithm_id]["model"] or "") == a.model
            assert listed[algorithm_id]["name"] == a.name.get(lang)
            assert listed[algorithm_id]["quality_figures"] == [f.value for f in a.figures]
    # Each service wrote its own rows.
    rows = db.execute("SELECT id, service FROM register_algorithms").fetchall()
    assert {r["id"]: r["service"] for r in rows} == {k: a.service for k, a in expected.items()}


@pytest.fixture
def quality_runs(db: psycopg.Connection[dict[str, Any]]) -> Iterator[str]:
    """A data set name of the test's own; its recorded runs are removed afterwards (the API
    only appends: the owner's connection cleans up)."""
    dataset = f"test-{uuid.uuid4().hex[:10]}.csv"
    yield dataset
    db.execute("DELETE FROM register_quality WHERE dataset = %s", (dataset,))


def test_recorded_quality_figures_show_on_the_register(
    api: httpx.Client,
    public: httpx.Client,
    db: psycopg.Connection[dict[str, Any]],
    quality_runs: str,
) -> None:
    algorithm = "energy.consumption_anomaly"
    now = datetime.now(UTC).replace(microsecond=0)
    body = {
        "dataset": quality_runs,
        "command": f"townpulse evaluate --domain energy {quality_runs} --threshold 0.99",
        "evaluated_at": (now - timedelta(minutes=1)).isoformat(),
        "recall": 0.75,
        "false_alerts_per_device_month": 1.5,
        "threshold_basis": "fixed",
    }
    r = api.put(f"/v1/register/quality/{algorithm}", json=body)
    assert r.status_code == 200, r.text
    # An older run recorded afterwards does not hide the newer one.
    older = {**body, "evaluated_at": "2020-01-01T00:00:00+00:00", "recall": 0.1}
    assert api.put(f"/v1/register/quality/{algorithm}", json=older).status_code == 200

    newest = db.execute(
        "SELECT dataset, figures FROM register_quality WHERE algorithm = %s"
        " ORDER BY evaluated_at DESC, id DESC LIMIT 1",
        (algorithm,),
    ).fetchone()
    assert newest is not None and newest["dataset"] == quality_runs
    for lang in ("fr", "en"):
        shown = _by_id(_register(public, lang))[algorithm]["quality"]
        assert shown["evaluated"] is True and shown["dataset"] == quality_runs
        assert shown["figures"] == newest["figures"]
        assert shown["figures"] == {
            "recall": 0.75,
            "false_alerts_per_device_month": 1.5,
            "threshold_basis": "fixed",
        }
    page = public.get("/public/register", params={"lang": "en"}).text
    assert quality_runs in page and "share of anomalies flagged (recall)" in page
    assert "alert threshold</span>: fixed before the run" in page
    # Audited like every admin change.
    audit = api.get("/v1/audit", params={"target": algorithm, "limit": 5}).json()
    assert audit and audit[0]["outcome"] == "ok" and audit[0]["detail"]["dataset"] == quality_runs


def test_an_algorithm_never_evaluated_says_so(public: httpx.Client) -> None:
    # The route planner has no quality figure to record: it is never evaluated.
    for lang, words in (("fr", "pas encore évalué"), ("en", "not evaluated yet")):
        shown = _by_id(_register(public, lang))["waste.route_plan"]["quality"]
        assert shown == {"evaluated": False, "status": words}


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("energy.nothing", {"recall": 0.5}, 404),
        ("energy.forecast", {"recall": 0.5}, 422),  # a forecast has no recall
        ("energy.consumption_anomaly", {}, 422),  # no figure
        ("energy.consumption_anomaly", {"recall": 1.5}, 422),
        ("energy.consumption_anomaly", {"false_alerts_per_device_month": -1}, 422),
        (
            "energy.consumption_anomaly",
            {"recall": 0.5, "evaluated_at": "2999-01-01T00:00:00Z"},
            422,
        ),
        ("energy.consumption_anomaly", {"recall": 0.5, "evaluated_at": "2026-01-01T00:00:00"}, 422),
        ("energy.consumption_anomaly", {"recall": 0.5, "dataset": "x" * 201}, 422),
        ("energy.consumption_anomaly", {"recall": 0.5, "dataset": "a\u202eb"}, 422),
        ("energy.consumption_anomaly", {"recall": 0.5, "dataset": "   "}, 422),
        ("energy.consumption_anomaly", {"recall": 0.5, "score": 3}, 422),
        ("Energy", {"recall": 0.5}, 422),
    ],
)
def test_recording_refuses_bad_input(
    api: httpx.Client,
    db: psycopg.Connection[dict[str, Any]],
    path: str,
    body: dict[str, Any],
    code: int,
) -> None:
    before = db.execute("SELECT count(*) AS n FROM register_quality").fetchone()
    full = {"dataset": "bad-input.csv", "command": "townpulse evaluate", **body}
    r = api.put(f"/v1/register/quality/{path}", json=full)
    assert r.status_code == code, r.text
    assert r.json()["detail"]
    assert db.execute("SELECT count(*) AS n FROM register_quality").fetchone() == before


def test_only_admins_change_the_register(
    public: httpx.Client, stack_env: dict[str, str], role_keys: dict[str, str]
) -> None:
    body = {"dataset": "d.csv", "command": "c", "recall": 0.5}
    assert (
        public.put("/v1/register/quality/energy.consumption_anomaly", json=body).status_code == 401
    )
    assert public.put("/v1/register/texts", json={"town_name": "X"}).status_code == 401
    for role in ("viewer", "operator"):
        headers = {"Authorization": f"Bearer {role_keys[role]}"}
        r = public.put(
            "/v1/register/quality/energy.consumption_anomaly", json=body, headers=headers
        )
        assert r.status_code == 403, (role, r.text)
        r = public.put("/v1/register/texts", json={"town_name": "X"}, headers=headers)
        assert r.status_code == 403, (role, r.text)


@pytest.fixture
def texts(api: httpx.Client) -> Iterator[dict[str, Any]]:
    """The texts as they were; put back afterwards ("" removes one that was unset)."""
    before = api.get("/v1/register/texts").json()
    yield before
    restore = {k: before[k] or "" for k in before if k != "updated_at"}
    assert api.put("/v1/register/texts", json=restore).status_code == 200


def test_admin_texts_change_the_page(
    api: httpx.Client, public: httpx.Client, texts: dict[str, Any]
) -> None:
    marker = uuid.uuid4().hex[:8]
    new = {
        "town_name": f"Sainte-Claire-{marker}",
        "contact_service": f"Direction du numérique {marker}",
        "contact_email": f"numerique-{marker}@sainte-claire.example",
        "intro_fr": f"Bienvenue {marker} <script>alert(1)</script>",
        "intro_en": f"Welcome {marker}",
    }
    r = api.put("/v1/register/texts", json=new)
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in new} == new

    fr, en = _register(public, "fr"), _register(public, "en")
    for doc in (fr, en):
        assert doc["administration"]["name"] == new["town_name"]
        assert doc["administration"]["service"] == new["contact_service"]
        assert doc["administration"]["contact"] == new["contact_email"]
        for a in doc["algorithms"]:
            assert a["contact"] == {
                "service": new["contact_service"],
                "email": new["contact_email"],
            }
    assert (fr["introduction"], en["introduction"]) == (new["intro_fr"], new["intro_en"])
    page = public.get("/public/register").text
    assert new["town_name"] in page and f"mailto:{new['contact_email']}" in page
    # Shown as text, never as markup.
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)" in page
    assert f"Welcome {marker}" in public.get("/public/register", params={"lang": "en"}).text

    # A field left out is kept; "" removes one, and the register falls back to its default.
    r = api.put("/v1/register/texts", json={"intro_en": ""})
    assert r.status_code == 200 and r.json()["intro_en"] is None
    assert r.json()["town_name"] == new["town_name"]
    assert _register(public, "en")["introduction"] is None

    audit = api.get("/v1/audit", params={"limit": 20}).json()
    assert any(e["detail"].get("texts") == ["intro_en"] and e["outcome"] == "ok" for e in audit)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"contact_email": "not an address"},
        {"contact_email": "x@localhost"},
        {"town_name": "x" * 121},
        {"intro_fr": "y" * 2001},
        {"contact_service": "bell\x07"},
        {"town_name": "Sainte-Claire", "mayor": "someone"},
        {"town_name": 42},
    ],
)
def test_bad_texts_are_refused(api: httpx.Client, texts: dict[str, Any], body: Any) -> None:
    r = api.put("/v1/register/texts", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]
    after = api.get("/v1/register/texts").json()
    assert {k: after[k] for k in after if k != "updated_at"} == {
        k: texts[k] for k in texts if k != "updated_at"
    }


@pytest.fixture
def devices(api: httpx.Client) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for device_id in made:
        api.delete(f"/v1/devices/{device_id}")


def _device(api: httpx.Client, made: list[str], domain: str, **fields: Any) -> str:
    device_id = f"reg-{uuid.uuid4().hex[:10]}"
    r = api.post("/v1/devices", json={"id": device_id, "domain": domain, **fields})
    assert r.status_code == 201, r.text
    made.append(device_id)
    return device_id


def test_what_the_town_measures_where_counts_districts_not_devices(
    api: httpx.Client,
    public: httpx.Client,
    db: psycopg.Connection[dict[str, Any]],
    stack_env: dict[str, str],
    devices: list[str],
) -> None:
    zone = f"quartier-{uuid.uuid4().hex[:6]}"
    bins = [
        _device(
            api,
            devices,
            "waste",
            metadata={"zone": zone},
            location={"lat": 45.9012 + i / 1000, "lon": 6.1234},
        )
        for i in range(3)
    ]
    # Meters without a zone, far from any other test's devices: counted in their grid cell.
    lat, lon = -47.123457, 168.765432
    meters = [
        _device(api, devices, "energy", location={"lat": lat + i / 10_000, "lon": lon})
        for i in range(2)
    ]
    _device(api, devices, "traffic")  # no zone, no position
    now = datetime.now(UTC)
    produce_readings(
        stack_env["KAFKA_BOOTSTRAP"],
        [
            ReadingBatch(
                device_id=d,
                domain=domain,
                received_at=now,
                readings=[Reading(ts=now - timedelta(minutes=5), metric=metric, value=40.0)],
            )
            for d, domain, metric in (
                (bins[0], Domain.WASTE, "fill_pct"),
                (bins[1], Domain.WASTE, "fill_pct"),
                (meters[0], Domain.ENERGY, "energy_kwh"),
            )
        ],
    )
    cell = grid_cell(
        math.floor(lat / GRID_DEG) * GRID_DEG, math.floor(lon / GRID_DEG) * GRID_DEG, GRID_DEG
    )

    def districts() -> dict[str, Any] | None:
        doc = _register(public, "en")
        found = {d["district"]: d for d in doc["sensors"]}
        ours = found.get(zone)
        if ours is None or not ours["domains"][0]["metrics"]:
            return None
        if not any(
            m["metric"] == "energy_kwh" for d in found[cell]["domains"] for m in d["metrics"]
        ):
            return None
        return found

    found = wait_for(districts, timeout=60, what="the register's districts")
    assert found[zone]["basis"] == "zone"
    assert found[zone]["domains"] == [
        {"domain": "waste", "devices": 3, "metrics": [{"metric": "fill_pct", "devices": 2}]}
    ]
    # The grid cell and the unlocated devices, reconciled with the devices table.
    in_cell = db.execute(
        "SELECT domain, count(*) AS n FROM devices WHERE deleted_at IS NULL"
        " AND nullif(metadata->>'zone', '') IS NULL AND lat >= %s AND lat < %s"
        " AND lon >= %s AND lon < %s GROUP BY domain",
        (
            math.floor(lat / GRID_DEG) * GRID_DEG,
            (math.floor(lat / GRID_DEG) + 1) * GRID_DEG,
            math.floor(lon / GRID_DEG) * GRID_DEG,
            (math.floor(lon / GRID_DEG) + 1) * GRID_DEG,
        ),
    ).fetchall()
    assert {d["domain"]: d["devices"] for d in found[cell]["domains"]} == {
        r["domain"]: r["n"] for r in in_cell
    }
    unlocated = db.execute(
        "SELECT domain, count(*) AS n FROM devices WHERE deleted_at IS NULL"
        " AND nullif(metadata->>'zone', '') IS NULL AND (lat IS NULL OR lon IS NULL)"
        " GROUP BY domain"
    ).fetchall()
    shown = found["no registered location"]
    assert shown["basis"] == "unlocated"
    assert {d["domain"]: d["devices"] for d in shown["domains"]} == {
        r["domain"]: r["n"] for r in unlocated
    }

    # Never a device id, a device's name or a position, in either language or on the page.
    every_id = {r["id"] for r in db.execute("SELECT id FROM devices").fetchall()}
    outputs = [public.get("/register/", params={"lang": lang}).text for lang in ("fr", "en")] + [
        public.get("/public/register", params={"lang": lang}).text for lang in ("fr", "en")
    ]
    for text in outputs:
        words = set(re.findall(r"[A-Za-z0-9_.:-]+", text))
        assert not words & every_id
        assert "47.1234" not in text and "168.765" not in text and "45.901" not in text
