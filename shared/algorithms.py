"""What each service's algorithms are, in words a citizen can read: the public register's source.

Each domain declares the algorithms it runs (`Algorithm`, next to the code that runs them), and
each service writes its declaration to the database when it starts (`declare`). The operator
API's public register (services/api/register.py) reads them back: the register lists what the
services run, never a list kept by hand elsewhere, and a model a town swaps in through its
settings shows under its own name.

The fields follow Etalab's practice sheet on the inventory of public algorithms ("Fiche
pratique : l'inventaire des principaux traitements algorithmiques", 2021; docs/register.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared.retention import PLATFORM_CLASSES

log = logging.getLogger(__name__)

RETENTION_CLASSES = frozenset(c.name for c in PLATFORM_CLASSES)
# An input that is whichever metric a rule names (the register says so in words).
ANY_METRIC = "*"


class Method(StrEnum):
    """Etalab's "type of algorithm": rules written by people, or learnt from data."""

    RULES = "rules"
    LEARNT = "machine_learning"
    OPTIMISATION = "optimisation"


class Figure(StrEnum):
    """The quality figures an evaluation run may record for an algorithm."""

    # Share of the labelled anomaly windows an alert was raised in.
    RECALL = "recall"
    # Alerts outside any labelled window, per device and month of data.
    FALSE_ALERTS = "false_alerts_per_device_month"
    # The forecast's mean absolute error divided by the strongest simple baseline's.
    FORECAST_ERROR_RATIO = "forecast_error_ratio"


@dataclass(frozen=True, slots=True)
class Text:
    """The same text in the register's two languages."""

    fr: str
    en: str

    def __post_init__(self) -> None:
        if not self.fr.strip() or not self.en.strip():
            raise ValueError("a register text needs both French and English")

    def get(self, lang: str) -> str:
        return self.fr if lang == "fr" else self.en


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One algorithm in service, described for the public register.

    `id` is stable (quality figures are recorded against it); `inputs` are the metrics it
    reads (`ANY_METRIC` for whichever a rule names); `outputs` the alert kinds or products it
    makes; `retention` the retention classes (shared/retention.py) of what it stores; `figures`
    the quality figures that apply to it; `model` what the running model is (class, version,
    parameters' hash), when it is learnt.
    """

    id: str
    service: str
    name: Text
    purpose: Text
    # How and when it intervenes: what it produces and who acts on it. Never a decision.
    decides: Text
    method: Text
    oversight: Text
    kind: Method
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    retention: tuple[str, ...]
    figures: tuple[Figure, ...] = ()
    model: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.retention) - RETENTION_CLASSES
        if unknown:
            raise ValueError(f"{self.id}: unknown retention classes {sorted(unknown)}")
        if not self.id.startswith(f"{self.service}."):
            raise ValueError(f"{self.id}: an algorithm's id starts with its service's name")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: texts as {"fr": ..., "en": ...}, tuples as lists.

        >>> a = Algorithm(id="x.rule", service="x", name=Text("R", "R"), purpose=Text("p", "p"),
        ...     decides=Text("d", "d"), method=Text("m", "m"), oversight=Text("o", "o"),
        ...     kind=Method.RULES, inputs=("fill_pct",), outputs=(), retention=("alerts",))
        >>> a.to_json()["name"], a.to_json()["inputs"]
        ({'fr': 'R', 'en': 'R'}, ['fill_pct'])
        """
        doc: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        return doc


async def declare(
    conn: AsyncConnection[Any], *, service: str, algorithms: Sequence[Algorithm]
) -> None:
    """Replace `service`'s declared algorithms with `algorithms`, in one transaction.

    `changed_at` moves only when a declaration changes (a new model, a new text): it is the
    register's "date of last update", not the time of the last restart.
    """
    ids = [a.id for a in algorithms]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{service}: an algorithm id is declared twice")
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM register_algorithms WHERE service = %s AND NOT (id = ANY(%s))",
            (service, ids),
        )
        for algorithm in algorithms:
            await conn.execute(
                """
                INSERT INTO register_algorithms (id, service, declaration)
                VALUES (%s, %s, %s)
                ON CONFLICT (id) DO UPDATE SET
                    service = EXCLUDED.service,
                    declaration = EXCLUDED.declaration,
                    declared_at = now(),
                    changed_at = CASE
                        WHEN register_algorithms.declaration = EXCLUDED.declaration
                        THEN register_algorithms.changed_at ELSE now() END
                """,
                (algorithm.id, service, Jsonb(algorithm.to_json())),
            )


async def declare_algorithms(
    pool: AsyncConnectionPool[Any], *, service: str, algorithms: Sequence[Algorithm]
) -> None:
    """`declare` at a service's start. A database that refuses it (a migration not yet run)
    is logged, not fatal: the service's own work matters more than its entry in the register,
    and the register's test sees a missing entry."""
    try:
        async with pool.connection() as conn:
            await declare(conn, service=service, algorithms=algorithms)
    except psycopg.Error:
        log.exception("%s: declaring its algorithms to the register failed", service)
