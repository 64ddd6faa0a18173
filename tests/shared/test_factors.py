"""The factor table: every factor sourced and within its bounds, a town's overrides applied,
refused when unknown or out of bounds, derived factors following their inputs."""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.factors import TABLE, FactorError, FactorOverrides, describe, load_factors

pytestmark = pytest.mark.unit

# What the monthly report and the footprint need; a table without one of them breaks them.
REQUIRED = {
    "diesel_kg_co2e_per_l",
    "refuse_truck_fuel_l_per_km",
    "refuse_truck_kg_co2e_per_km",
    "diesel_eur_per_l",
    "grid_kg_co2e_per_kwh",
    "electricity_eur_per_kwh",
    "server_manufacture_kg_co2e",
    "server_lifetime_years",
    "server_idle_w",
    "server_w_per_busy_core",
    "server_w_per_gb_memory",
    "server_platform_share",
}


def _raw_table() -> dict[str, dict[str, object]]:
    text = resources.files("shared.factors").joinpath(TABLE).read_text(encoding="utf-8")
    return {row["key"]: row for row in tomllib.loads(text)["factor"]}


def test_the_shipped_table_has_every_factor_with_its_source() -> None:
    factors = load_factors()
    assert factors.version == TABLE.removeprefix("factors-").removesuffix(".toml")
    assert {f.key for f in factors.all()} >= REQUIRED
    for f in factors.all():
        assert f.value > 0 and math.isfinite(f.value), f.key
        assert f.unit and len(f.source) > 20, f.key
        assert 2000 <= f.year <= 2030, f.key
        assert f.url == "" or f.url.startswith("https://"), f.key
        assert not f.overridden
    assert factors.overridden() == []


def test_values_are_the_tables() -> None:
    raw = _raw_table()
    factors = load_factors()
    for key, row in raw.items():
        if "derived_from" not in row:
            assert factors[key].value == row["value"]


def test_a_derived_factor_is_the_product_of_its_inputs_and_the_table_agrees() -> None:
    raw = _raw_table()
    factors = load_factors()
    truck = factors["refuse_truck_kg_co2e_per_km"].value
    l_per_km = raw["refuse_truck_fuel_l_per_km"]["value"]
    kg_per_l = raw["diesel_kg_co2e_per_l"]["value"]
    assert isinstance(l_per_km, float) and isinstance(kg_per_l, float)
    assert truck == pytest.approx(l_per_km * kg_per_l)
    # The value written in the table is the one a reader of the file sees: it must agree.
    assert raw["refuse_truck_kg_co2e_per_km"]["value"] == pytest.approx(truck)


def test_an_override_replaces_a_value_and_is_reported() -> None:
    factors = load_factors({"electricity_eur_per_kwh": 0.27})
    assert factors["electricity_eur_per_kwh"].value == 0.27
    assert factors["electricity_eur_per_kwh"].overridden
    assert factors.overridden() == ["electricity_eur_per_kwh"]
    assert factors["grid_kg_co2e_per_kwh"].value == _raw_table()["grid_kg_co2e_per_kwh"]["value"]
    described = describe(factors)
    assert described["version"] == factors.version
    assert described["overridden"] == ["electricity_eur_per_kwh"]
    assert len(described["factors"]) == len(factors.all())


def test_a_derived_factor_follows_an_overridden_input() -> None:
    factors = load_factors({"refuse_truck_fuel_l_per_km": 0.6})
    kg_per_l = factors["diesel_kg_co2e_per_l"].value
    assert factors["refuse_truck_kg_co2e_per_km"].value == pytest.approx(0.6 * kg_per_l)
    assert factors["refuse_truck_kg_co2e_per_km"].overridden
    assert set(factors.overridden()) == {
        "refuse_truck_fuel_l_per_km",
        "refuse_truck_kg_co2e_per_km",
    }


def test_a_derived_factor_can_be_set_directly() -> None:
    factors = load_factors({"refuse_truck_kg_co2e_per_km": 1.1, "refuse_truck_fuel_l_per_km": 0.6})
    assert factors["refuse_truck_kg_co2e_per_km"].value == 1.1


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"electricity_eur_per_kwh_typo": 0.2}, "unknown factor"),
        ({"electricity_eur_per_kwh": -0.2}, "outside"),
        ({"electricity_eur_per_kwh": 0.0}, "outside"),
        ({"electricity_eur_per_kwh": 1e9}, "outside"),
        ({"electricity_eur_per_kwh": math.inf}, "outside"),
        ({"electricity_eur_per_kwh": math.nan}, "outside"),
        ({"server_platform_share": 1.5}, "outside"),
        ({"electricity_eur_per_kwh": "0.2"}, "not a number"),
        ({"electricity_eur_per_kwh": True}, "not a number"),
    ],
)
def test_bad_overrides_are_refused_with_a_reason(overrides: dict[str, float], reason: str) -> None:
    with pytest.raises(FactorError, match=reason):
        load_factors(overrides)


def test_an_unknown_key_is_not_looked_up_silently() -> None:
    with pytest.raises(KeyError, match="no factor"):
        load_factors()["nope"]


class _Town(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOWNPULSE_", frozen=True)
    factors: FactorOverrides = {}


def test_the_setting_is_read_as_json_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWNPULSE_FACTORS", '{"diesel_eur_per_l": 1.8}')
    assert load_factors(_Town().factors)["diesel_eur_per_l"].value == 1.8
    monkeypatch.setenv("TOWNPULSE_FACTORS", '{"diesel_eur_per_l": 1800}')
    with pytest.raises(ValidationError, match="outside"):
        _Town()
    monkeypatch.setenv("TOWNPULSE_FACTORS", '{"petrol": 1.8}')
    with pytest.raises(ValidationError, match="unknown factor"):
        _Town()


def test_the_docs_list_every_factor_with_its_value_unit_and_year() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "report.md").read_text(encoding="utf-8")
    rows = {
        cells[0].strip("` "): cells
        for line in docs.splitlines()
        if line.startswith("| `")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    for f in load_factors().all():
        assert f.key in rows, f"docs/report.md does not list {f.key}"
        _, value, unit, _, year = rows[f.key]
        assert float(value) == pytest.approx(f.value), f.key
        assert (unit, int(year)) == (f.unit, f.year), f.key
