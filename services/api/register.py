"""The public register of algorithms and sensors: pure logic (no I/O).

Builds the register's document, in one language, from what the services declared
(shared/algorithms.py), the last recorded evaluation of each algorithm, the texts an admin set,
the retention settings, and the devices counted per district. The HTML page and the JSON are
the same document (services/api/routes/register.py, console/templates/register.html).

Fields follow Etalab's practice sheet on the inventory of public algorithms (2021): the
administration (name, service, contact, date of update), the algorithm and the decision (name,
purpose, how it intervenes, level of automation, legal basis), its impact (decisions per year,
scope, public concerned) and how it works (data, their source and collection, type of
algorithm, operations). See docs/register.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.algorithms import ANY_METRIC, Figure
from shared.retention import PLATFORM_CLASSES, RetentionSettings

SCHEMA = 1
LANGUAGES = ("fr", "en")
# Keys of the texts an admin sets (register_texts): the town's name, who answers questions, and
# a free introduction per language.
TEXT_KEYS = ("town_name", "contact_service", "contact_email", "intro_fr", "intro_en")
# What stands in a text an admin sets: printable characters and line breaks, nothing that could
# hide text from a reader (control characters, bidirectional overrides).
_FORBIDDEN = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")

# Where a device is counted: the zone the town registered it in, else a grid cell of its
# position, else nowhere in particular.
BASIS_ZONE, BASIS_GRID, BASIS_UNLOCATED = "zone", "grid", "unlocated"

_T: dict[str, dict[str, str]] = {
    "fr": {
        "automation": "Aide à la décision : aucune décision n'est prise automatiquement.",
        "legal": "Article L312-1-3 du code des relations entre le public et l'administration "
        "(CRPA) : les administrations publient les règles des principaux traitements "
        "algorithmiques qui fondent des décisions individuelles. Aucun de ces algorithmes ne "
        "fonde de décision individuelle : ils signalent des situations à des agents de la "
        "ville. Ce registre est publié par transparence, selon la fiche pratique d'Etalab sur "
        "l'inventaire des algorithmes publics.",
        "scope": "Interne : gestion des équipements et services de la ville.",
        "public": "Aucune personne : les mesures portent sur des équipements (bâtiments, "
        "bacs, routes).",
        "personal_data": "Aucune donnée personnelle : des mesures de capteurs (énergie, "
        "remplissage, température, nombre et vitesse des véhicules, jamais leur identité).",
        "source": "Capteurs installés par la ville, reçus par son réseau de capteurs.",
        "collection": "Relevés automatiques des capteurs, toutes les quelques minutes.",
        "unlocated": "sans emplacement enregistré",
        "any_metric": "toute grandeur qu'une règle nomme",
        "not_evaluated": "pas encore évalué",
    },
    "en": {
        "automation": "Decision support: no decision is taken automatically.",
        "legal": "Article L312-1-3 of the French code of relations between the public and the "
        "administration (CRPA): administrations publish the rules of the main algorithmic "
        "processing that individual decisions are based on. None of these algorithms is the "
        "basis of an individual decision: they point situations out to the town's staff. This "
        "register is published for transparency, following Etalab's practice sheet on the "
        "inventory of public algorithms.",
        "scope": "Internal: management of the town's equipment and services.",
        "public": "No one: the readings are about equipment (buildings, bins, roads).",
        "personal_data": "No personal data: sensor readings (energy, fill level, temperature, "
        "number and speed of vehicles, never who is in them).",
        "source": "Sensors installed by the town, received through its sensor network.",
        "collection": "Automatic sensor readings, every few minutes.",
        "unlocated": "no registered location",
        "any_metric": "any metric a rule names",
        "not_evaluated": "not evaluated yet",
    },
}


# shared/retention.py describes its classes in English; the register speaks French too.
RETENTION_FR = {
    "readings": "Relevés bruts des capteurs, tels que reçus, et la qualité radio de chaque trame.",
    "aggregates_hourly": "Nombre, somme, minimum et maximum par heure, capteur et grandeur.",
    "aggregates_daily": "Nombre, somme, minimum et maximum par jour, capteur et grandeur.",
    "scores": "Une ligne par relevé calculée par les modèles : valeur attendue et score "
    "d'anomalie (énergie, circulation), niveau de remplissage nettoyé (déchets).",
    "forecasts": "Prévisions, conservées selon la date qu'elles prévoient.",
    "episodes": "Épisodes d'anomalie et collectes de bacs détectées.",
    "alerts": "Alertes résolues, leur historique et les avis des techniciens (les alertes "
    "ouvertes ne sont jamais effacées).",
    "deadletters": "Messages refusés avec leur contenu tronqué, et capteurs entendus mais non "
    "enregistrés.",
    "webhook_deliveries": "Messages envoyés aux services abonnés et chaque tentative d'envoi.",
    "event_outbox": "Événements en attente d'envoi (envoyés et effacés en quelques secondes).",
    "processed_events": "Identifiants des événements d'alerte déjà traités (détection des "
    "doublons).",
    "erasure_tombstones": "Identifiants et dates des capteurs effacés, pour que leurs relevés "
    "encore en transit restent effacés.",
    "deleted_device_state": "État des modèles et activité des capteurs supprimés (sans "
    "effacement) depuis cette durée.",
    "footprint": "Mesures du temps de calcul, de la mémoire et des compteurs d'énergie de la "
    "plateforme elle-même, par composant (aucun capteur, aucune personne) : l'empreinte du "
    "bilan mensuel.",
}


def phrase(lang: str, key: str) -> str:
    """One of the register's fixed phrases in `lang`.

    >>> phrase("en", "not_evaluated"), phrase("fr", "not_evaluated")
    ('not evaluated yet', 'pas encore évalué')
    """
    return _T[lang][key]


def clean_text(value: str, *, max_length: int) -> str:
    """`value` trimmed, if it is fit to publish; ValueError with the reason otherwise.

    >>> clean_text("  Mairie de Sainte-Claire ", max_length=50)
    'Mairie de Sainte-Claire'
    >>> clean_text("a\\u202eb", max_length=50)
    Traceback (most recent call last):
    ...
    ValueError: control or direction characters are not allowed
    """
    text = value.strip()
    if len(text) > max_length:
        raise ValueError(f"at most {max_length} characters")
    if _FORBIDDEN.search(text):
        raise ValueError("control or direction characters are not allowed")
    return text


def grid_cell(lat_cell: float, lon_cell: float, size_deg: float) -> str:
    """The label of a grid cell given its south-west corner, which is all that is published.

    >>> grid_cell(45.9, 6.12, 0.01)
    'cell 45.90N 6.12E (0.01°)'
    >>> grid_cell(-33.87, -151.21, 0.05)
    'cell 33.87S 151.21W (0.05°)'
    """
    decimals = max(0, -int(f"{size_deg:e}".split("e")[1]))
    ns, ew = ("N" if lat_cell >= 0 else "S"), ("E" if lon_cell >= 0 else "W")
    return f"cell {abs(lat_cell):.{decimals}f}{ns} {abs(lon_cell):.{decimals}f}{ew} ({size_deg:g}°)"


@dataclass(frozen=True, slots=True)
class SensorCount:
    """Devices of a domain in a district, and per metric how many reported it lately."""

    basis: str
    district: str
    domain: str
    devices: int
    metrics: dict[str, int]


def sensor_map(rows: Iterable[Mapping[str, Any]], *, lang: str) -> list[dict[str, Any]]:
    """District -> domains -> devices and metrics, from rows of (basis, district, domain,
    metric or None, devices). No device id or position is in the rows, so none is here.

    >>> rows = [
    ...     {"basis": "zone", "district": "centre", "domain": "waste", "metric": None,
    ...      "devices": 5},
    ...     {"basis": "zone", "district": "centre", "domain": "waste", "metric": "fill_pct",
    ...      "devices": 4},
    ...     {"basis": "unlocated", "district": None, "domain": "energy", "metric": None,
    ...      "devices": 2},
    ... ]
    >>> [(d["district"], d["domains"]) for d in sensor_map(rows, lang="en")]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('centre', [{'domain': 'waste', 'devices': 5, 'metrics': [{'metric': 'fill_pct',
      'devices': 4}]}]), ('no registered location', [{'domain': 'energy', 'devices': 2,
      'metrics': []}])]
    """
    districts: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        basis = r["basis"]
        district = r["district"] if basis != BASIS_UNLOCATED else phrase(lang, "unlocated")
        domains = districts.setdefault((basis, district), {})
        entry = domains.setdefault(
            r["domain"], {"domain": r["domain"], "devices": 0, "metrics": []}
        )
        if r["metric"] is None:
            entry["devices"] = int(r["devices"])
        else:
            entry["metrics"].append({"metric": r["metric"], "devices": int(r["devices"])})
    order = {BASIS_ZONE: 0, BASIS_GRID: 1, BASIS_UNLOCATED: 2}
    out = []
    for (basis, district), domains in sorted(
        districts.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])
    ):
        for entry in domains.values():
            entry["metrics"].sort(key=lambda m: m["metric"])
        out.append(
            {
                "district": district,
                "basis": basis,
                "domains": [domains[d] for d in sorted(domains)],
            }
        )
    return out


def quality(
    last: Mapping[str, Any] | None, *, declared: Iterable[str], lang: str
) -> dict[str, Any]:
    """The last evaluation run's figures (those that apply), or "not evaluated yet".

    >>> quality(None, declared=["recall"], lang="en")
    {'evaluated': False, 'status': 'not evaluated yet'}
    >>> q = quality({"evaluated_at": "2026-12-01", "dataset": "d", "command": "c",
    ...              "figures": {"recall": 0.8, "baseline": "last_value"}},
    ...             declared=["recall"], lang="en")
    >>> q["figures"], q["dataset"]
    ({'recall': 0.8, 'baseline': 'last_value'}, 'd')
    """
    if last is None:
        return {"evaluated": False, "status": phrase(lang, "not_evaluated")}
    return {
        "evaluated": True,
        "evaluated_at": last["evaluated_at"],
        "dataset": last["dataset"],
        "command": last["command"],
        "figures": {
            k: v
            for k, v in last["figures"].items()
            if v is not None and (k in declared or k not in {f.value for f in Figure})
        },
    }


def retention(
    classes: Iterable[str], settings: RetentionSettings, *, lang: str
) -> list[dict[str, Any]]:
    """Each retention class an algorithm's outputs belong to, with its period (0: for ever).

    >>> [(r["days"], r["description"]) for r in retention(["forecasts"], RetentionSettings(),
    ...                                                     lang="fr")]
    [(90, "Prévisions, conservées selon la date qu'elles prévoient.")]
    """
    described = {c.name: c.description for c in PLATFORM_CLASSES} if lang == "en" else RETENTION_FR
    return [
        {"class": name, "days": settings.days(name), "description": described[name]}
        for name in classes
    ]


def document(
    *,
    lang: str,
    declarations: Sequence[Mapping[str, Any]],
    latest_quality: Mapping[str, Mapping[str, Any]],
    texts: Mapping[str, str],
    texts_updated_at: datetime | None,
    default_town: str,
    retention_settings: RetentionSettings,
    sensors: Sequence[Mapping[str, Any]],
    links: Mapping[str, str],
) -> dict[str, Any]:
    """The register in `lang`: administration, algorithms, sensors per district.

    `declarations`: rows of register_algorithms (`declaration`, `changed_at`);
    `latest_quality`: per algorithm id, its last register_quality row.
    """
    contact = {
        "service": texts.get("contact_service") or None,
        "email": texts.get("contact_email") or None,
    }
    algorithms = []
    for row in sorted(declarations, key=lambda r: r["declaration"]["id"]):
        d = row["declaration"]
        algorithms.append(
            {
                "id": d["id"],
                "service": d["service"],
                "name": d["name"][lang],
                "purpose": d["purpose"][lang],
                "decides": d["decides"][lang],
                "automation": phrase(lang, "automation"),
                "individual_decisions_per_year": 0,
                "scope": phrase(lang, "scope"),
                "public_concerned": phrase(lang, "public"),
                "type": d["kind"],
                "method": d["method"][lang],
                "model": d["model"] or None,
                "inputs": [
                    phrase(lang, "any_metric") if i == ANY_METRIC else i for i in d["inputs"]
                ],
                "personal_data": False,
                "data": phrase(lang, "personal_data"),
                "data_source": phrase(lang, "source"),
                "data_collection": phrase(lang, "collection"),
                "outputs": d["outputs"],
                "retention": retention(d["retention"], retention_settings, lang=lang),
                "human_oversight": d["oversight"][lang],
                "quality": quality(latest_quality.get(d["id"]), declared=d["figures"], lang=lang),
                "quality_figures": d["figures"],
                "contact": contact,
                "updated_at": row["changed_at"],
            }
        )
    stamps: list[datetime] = [r["changed_at"] for r in declarations]
    stamps += [q["recorded_at"] for q in latest_quality.values() if "recorded_at" in q]
    if texts_updated_at is not None:
        stamps.append(texts_updated_at)
    return {
        "schema": SCHEMA,
        "lang": lang,
        "administration": {
            "name": texts.get("town_name") or default_town,
            "service": contact["service"],
            "contact": contact["email"],
            "updated_at": max(stamps) if stamps else None,
        },
        "introduction": texts.get(f"intro_{lang}") or None,
        "legal_basis": phrase(lang, "legal"),
        "algorithms": algorithms,
        "sensors": sensor_map(sensors, lang=lang),
        "links": dict(links),
    }
