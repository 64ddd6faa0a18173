"""The algorithms each service declares to the public register: complete, in both languages,
and naming the model each service actually builds."""

from __future__ import annotations

import pytest

from services.alerts.domain.algorithms import ALGORITHMS as ALERTS
from services.energy.domain.algorithms import algorithms as energy
from services.energy.domain.meter import EnergyProcessor
from services.lighting.domain.algorithms import algorithms as lighting
from services.lighting.domain.circuit import LightingProcessor
from services.lighting.settings import LightingSettings
from services.traffic.domain.algorithms import algorithms as traffic
from services.traffic.domain.counter import TrafficProcessor
from services.waste.domain.algorithms import algorithms as waste
from services.waste.domain.bin import WasteProcessor
from shared import domains
from shared.algorithms import Algorithm, Figure, Method, Text
from shared.ml.registry import ModelSpec, describe

pytestmark = pytest.mark.unit


def declared() -> list[Algorithm]:
    return [
        *energy(EnergyProcessor()),
        *waste(WasteProcessor()),
        *traffic(TrafficProcessor()),
        *lighting(LightingProcessor(town=LightingSettings(dev_mode=True).town())),
        *ALERTS,
    ]


def test_every_service_declares_what_it_runs_once() -> None:
    algorithms = declared()
    ids = [a.id for a in algorithms]
    assert len(ids) == len(set(ids))
    assert {a.service for a in algorithms} == {*domains.names(), "alerts"}
    for a in algorithms:
        assert a.inputs, a.id
        # Learnt algorithms name the model they run; rules have none to name.
        assert bool(a.model) == (a.kind is Method.LEARNT), a.id
        assert set(a.figures) <= set(Figure)


@pytest.mark.parametrize("algorithm", declared(), ids=lambda a: a.id)
def test_each_declaration_speaks_both_languages(algorithm: Algorithm) -> None:
    for text in (algorithm.name, algorithm.purpose, algorithm.decides, algorithm.method):
        assert text.fr != text.en
    # What it decides is never a decision: it says so in both languages.
    assert algorithm.decides.fr.startswith("Rien") and algorithm.decides.en.startswith("Nothing")


def test_the_declared_model_is_the_one_the_processor_builds() -> None:
    processor = EnergyProcessor()
    by_id = {a.id: a for a in energy(processor)}
    assert by_id["energy.consumption_anomaly"].model == describe(processor._detector())
    assert by_id["energy.forecast"].model == describe(processor._forecaster())


def test_a_model_swapped_in_by_settings_shows_under_its_own_name() -> None:
    default = {a.id: a.model for a in waste(WasteProcessor())}
    processor = WasteProcessor(fill_model=ModelSpec(path="river.linear_model.LinearRegression"))
    swapped = {a.id: a.model for a in waste(processor)}
    assert swapped["waste.fill_forecast"] == describe(processor._rates())
    assert swapped["waste.fill_forecast"] != default["waste.fill_forecast"]


def test_a_declaration_refuses_what_the_register_could_not_show() -> None:
    text = Text("x", "y")
    common = {
        "name": text,
        "purpose": text,
        "decides": text,
        "method": text,
        "oversight": text,
        "kind": Method.RULES,
        "inputs": ("m",),
        "outputs": (),
    }
    with pytest.raises(ValueError, match="unknown retention"):
        Algorithm(id="energy.x", service="energy", retention=("for_ever",), **common)
    with pytest.raises(ValueError, match="starts with its service"):
        Algorithm(id="waste.x", service="energy", retention=(), **common)
    with pytest.raises(ValueError, match="both French and English"):
        Text("", "only English")
