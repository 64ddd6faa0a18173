"""The platform picks lighting up from its manifest: erasure, retention, topics, the stack's
services and the API's forwarding, with nothing of lighting's named in shared/ or townpulse/."""

from __future__ import annotations

import pytest

from services.lighting.domain.algorithms import algorithms
from services.lighting.domain.circuit import KINDS, LightingProcessor
from services.lighting.manifest import MANIFEST
from shared import erasure, retention
from shared.night import Town
from shared.topics import READINGS_TOPICS, Domain, all_topics
from townpulse.stack.config import DOMAIN_SERVICES, SERVICES, StackSettings

pytestmark = pytest.mark.unit

TABLES = ("lighting_readings", "lighting_episodes", "lighting_circuits")


def test_erasure_clears_every_lighting_table_by_device() -> None:
    tables = dict(erasure.device_tables())
    assert {t: tables.get(t) for t in TABLES} == dict.fromkeys(TABLES, "device_id")


def test_retention_prunes_each_lighting_table_in_its_class() -> None:
    where = {t.table: (c.name, t.policy) for c in retention.classes() for t in c.targets}
    assert where["lighting_readings"] == ("scores", True)
    assert where["lighting_episodes"][0] == "episodes"
    assert where["lighting_circuits"][0] == "deleted_device_state"


def test_the_stack_runs_and_forwards_the_lighting_service() -> None:
    (spec,) = [s for s in SERVICES if s.name == "lighting"]
    assert (spec.module, spec.port_setting, spec.routes) == (
        "services.lighting",
        "lighting_port",
        ("lighting",),
    )
    assert "lighting" in DOMAIN_SERVICES
    assert isinstance(getattr(StackSettings(), spec.port_setting), int)
    assert READINGS_TOPICS[Domain.LIGHTING] == MANIFEST.topic == "readings.lighting"
    assert MANIFEST.topic in all_topics()


def test_the_register_declares_what_the_processor_raises() -> None:
    town = Town(latitude=48.8566, longitude=2.3522, zone="Europe/Paris")
    (fault,) = algorithms(LightingProcessor(town=town))
    assert fault.id == "lighting.fault_detection"
    assert set(fault.outputs) == {*KINDS, "lighting.controller_silent"}
    assert "30 min" in fault.method.en
