"""Emission and cost factors as data: a versioned table shipped with the product, overridable
per town.

The table (`factors-<version>.toml` beside this module) gives each factor its value, unit,
source (publication and address) and year, and the bounds a town's override must stay within.
A town sets its own values with `TOWNPULSE_FACTORS` (JSON, key -> value: its electricity
tariff, its trucks' consumption); whatever reads them reports the table's version and which
values were overridden, so a printed figure can always be traced to its factor.

    >>> f = load_factors({"electricity_eur_per_kwh": 0.25})
    >>> f["electricity_eur_per_kwh"].value, f["electricity_eur_per_kwh"].overridden
    (0.25, True)
    >>> f["grid_kg_co2e_per_kwh"].overridden
    False
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Annotated, Any

from pydantic import AfterValidator

# The table this release uses. A new publication is a new file and a new version here: an
# archived report names the version whose figures it printed.
TABLE = "factors-2026.1.toml"


class FactorError(ValueError):
    """A factor table or an override that cannot be used (unknown key, out of bounds)."""


@dataclass(frozen=True)
class Factor:
    key: str
    value: float
    unit: str
    source: str
    url: str
    year: int
    # True when the town's value replaced the table's (or, for a derived factor, when one of
    # the factors it is the product of was).
    overridden: bool


@dataclass(frozen=True)
class _Entry:
    factor: Factor
    low: float
    high: float
    derived_from: tuple[str, ...]


class Factors:
    """One table's factors after the town's overrides: `factors[key]` is a `Factor`."""

    def __init__(self, version: str, factors: Mapping[str, Factor]) -> None:
        self.version = version
        self._factors = dict(factors)

    def __getitem__(self, key: str) -> Factor:
        try:
            return self._factors[key]
        except KeyError:
            raise KeyError(f"no factor {key!r} in table {self.version}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._factors

    def __iter__(self) -> Iterator[str]:
        return iter(self._factors)

    def all(self) -> list[Factor]:
        """Every factor, in the table's order."""
        return list(self._factors.values())

    def overridden(self) -> list[str]:
        """The keys whose value is not the table's."""
        return [f.key for f in self._factors.values() if f.overridden]

    def value(self, key: str) -> float:
        return self[key].value


def _read_table(text: str) -> tuple[str, dict[str, _Entry]]:
    data = tomllib.loads(text)
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise FactorError("factor table without a version")
    entries: dict[str, _Entry] = {}
    for row in data.get("factor", []):
        try:
            key = str(row["key"])
            factor = Factor(
                key=key,
                value=float(row["value"]),
                unit=str(row["unit"]),
                source=str(row["source"]),
                url=str(row.get("url", "")),
                year=int(row["year"]),
                overridden=False,
            )
            low, high = float(row["min"]), float(row["max"])
        except (KeyError, TypeError, ValueError) as e:
            raise FactorError(f"factor table {version}: bad row {row!r}: {e}") from e
        if key in entries:
            raise FactorError(f"factor table {version}: {key} twice")
        if not (0 < low <= factor.value <= high and math.isfinite(high)):
            raise FactorError(f"factor table {version}: {key} outside its own bounds")
        derived = tuple(str(k) for k in row.get("derived_from", ()))
        entries[key] = _Entry(factor, low, high, derived)
    for entry in entries.values():
        missing = [k for k in entry.derived_from if k not in entries or entries[k].derived_from]
        if missing:
            raise FactorError(f"factor table {version}: {entry.factor.key} derived from {missing}")
    return version, entries


def check_overrides(overrides: Mapping[str, float], *, table: str = TABLE) -> dict[str, float]:
    """The overrides as floats, or FactorError naming the first one refused: unknown key, not a
    finite number, or outside the factor's bounds (positive, of a sensible order)."""
    _, entries = _read_table(_table_text(table))
    checked: dict[str, float] = {}
    for key, raw in overrides.items():
        entry = entries.get(key)
        if entry is None:
            raise FactorError(f"unknown factor {key!r} (known: {', '.join(sorted(entries))})")
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise FactorError(f"factor {key}: {raw!r} is not a number")
        value = float(raw)
        if not math.isfinite(value) or not entry.low <= value <= entry.high:
            raise FactorError(
                f"factor {key}: {value} {entry.factor.unit} outside [{entry.low}, {entry.high}]"
            )
        checked[key] = value
    return checked


def load_factors(overrides: Mapping[str, float] | None = None, *, table: str = TABLE) -> Factors:
    """The shipped table with the town's overrides applied (checked as `check_overrides`)."""
    version, entries = _read_table(_table_text(table))
    checked = check_overrides(overrides or {}, table=table)
    factors: dict[str, Factor] = {}
    for key, entry in entries.items():
        if key in checked:
            factors[key] = replace(entry.factor, value=checked[key], overridden=True)
        elif not entry.derived_from:
            factors[key] = entry.factor
    for key, entry in entries.items():
        if key in factors:
            continue
        # A derived factor follows its inputs, so a town that sets its trucks' consumption
        # gets their emissions per km without setting both.
        value = math.prod(factors[k].value for k in entry.derived_from)
        changed = any(factors[k].overridden for k in entry.derived_from)
        factors[key] = replace(entry.factor, value=value, overridden=changed)
    return Factors(version, {key: factors[key] for key in entries})


@functools.cache
def _table_text(table: str) -> str:
    # Read once per process: the table is part of the installed product and never changes.
    return resources.files(__package__).joinpath(table).read_text(encoding="utf-8")


def _check_setting(value: dict[str, float]) -> dict[str, float]:
    return check_overrides(value)


# A settings field for the town's overrides, e.g. `factors: FactorOverrides = {}` in a
# pydantic-settings class: TOWNPULSE_FACTORS='{"electricity_eur_per_kwh": 0.23}' is parsed as
# JSON and refused at startup when a key or value is not acceptable.
FactorOverrides = Annotated[dict[str, float], AfterValidator(_check_setting)]


def describe(factors: Factors) -> dict[str, Any]:
    """The table as JSON-ready data: version, overridden keys, every factor."""
    return {
        "version": factors.version,
        "overridden": factors.overridden(),
        "factors": [
            {
                "key": f.key,
                "value": f.value,
                "unit": f.unit,
                "source": f.source,
                "url": f.url,
                "year": f.year,
                "overridden": f.overridden,
            }
            for f in factors.all()
        ],
    }
