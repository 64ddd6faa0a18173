"""The domain registry: the registered manifests load, agree with the Domain enum and the
readings topics, are cheap to import, and a faulty or clashing manifest is refused."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.api import opendata
from services.api.console.routes import HERE as CONSOLE
from shared import domains
from shared.domains import (
    ConsolePage,
    Dataset,
    DomainManifest,
    ManifestError,
    ServicePart,
    Table,
)
from shared.topics import READINGS_TOPICS, Domain

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _dataset(id_: str, /, **changes: object) -> Dataset:
    base = Dataset(id_, "Levels", "Levels per day.", ("water",), ("day", "level"), "devices", "P1D")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _manifest(name: str, /, **changes: object) -> DomainManifest:
    base = DomainManifest(
        name=name,
        topic=f"readings.{name}",
        service=ServicePart(module=f"services.{name}", port_setting=f"{name}_port"),
        tables=(Table(f"{name}_levels", retention="scores", age="ts"),),
        routes=(name,),
        console=(ConsolePage(f"/{name}", name, name.title()),),
        datasets=(_dataset(f"{name}-levels"),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_every_domain_package_is_registered_once() -> None:
    """Each services/<x>/manifest.py is in the registration list, and each listed module is a
    domain package's manifest."""
    on_disk = {p.parent.name for p in (ROOT / "services").glob("*/manifest.py")}
    assert set(domains.names()) == on_disk
    assert len(domains.names()) == len(on_disk)


def test_the_domain_enum_and_the_topics_follow_the_manifests() -> None:
    assert [d.value for d in Domain] == list(domains.names())
    assert {d.value: t for d, t in READINGS_TOPICS.items()} == {
        m.name: m.topic for m in domains.registered()
    }


def test_manifests_name_real_service_packages_and_console_templates() -> None:
    for m in domains.registered():
        package = ROOT / m.service.module.replace(".", "/")
        assert (package / "__main__.py").is_file(), m.name
        assert (package / "manifest.py").is_file(), m.name
        for page in m.console:
            assert (CONSOLE / "templates" / f"{page.template}.html").is_file(), page


def test_every_open_data_dataset_belongs_to_one_domain() -> None:
    declared = [d.id for m in domains.registered() for d in m.datasets]
    assert sorted(declared) == sorted(opendata.DATASETS)


def test_manifests_are_cheap_to_import() -> None:
    """Reading the manifests imports no web framework, database driver or model library, and
    none of the services' own code beyond the manifests (a fresh interpreter)."""
    probe = (
        "import json, sys\n"
        "from shared import domains\n"
        "domains.registered()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout))
    for heavy in ("fastapi", "psycopg", "river", "numpy", "pydantic", "aiokafka"):
        assert heavy not in loaded, heavy
    ours = {m for m in loaded if m.startswith(("services.", "shared."))}
    names = domains.names()
    expected = {"shared.domains", "services.domains"}
    expected |= {f"services.{n}" for n in names} | {f"services.{n}.manifest" for n in names}
    assert ours == expected


def test_load_reads_the_manifest_of_each_module_in_order() -> None:
    modules = ["services.traffic.manifest", "services.energy.manifest"]
    assert [m.name for m in domains.load(modules)] == ["traffic", "energy"]


def test_a_module_without_a_manifest_is_refused() -> None:
    with pytest.raises(ManifestError, match="holds no MANIFEST"):
        domains.load(["shared.topics"])


@pytest.mark.parametrize(
    ("second", "what"),
    [
        (_manifest("water"), "domain names"),
        (_manifest("rain", topic="readings.water"), "topics"),
        (_manifest("rain", tables=(Table("water_levels", retention=None),)), "tables"),
        (_manifest("rain", routes=("water",)), "routes"),
        (_manifest("rain", console=(ConsolePage("/water", "rain", "Rain"),)), "console paths"),
        (_manifest("rain", service=ServicePart("services.water", "rain_port")), "service modules"),
        (_manifest("rain", service=ServicePart("services.rain", "water_port")), "port settings"),
        (_manifest("rain", datasets=(_dataset("water-levels"),)), "datasets"),
    ],
)
def test_two_domains_may_not_declare_the_same_thing(second: DomainManifest, what: str) -> None:
    with pytest.raises(ManifestError, match=f"^{what} declared by more than one domain: "):
        domains.validate([_manifest("water"), second])


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"name": "Water"}, "not a lower-case identifier"),
        ({"routes": ("water/../admin",)}, "not a path segment"),
        ({"console": (ConsolePage("water", "water", "Water"),)}, "not /<segment>"),
        ({"tables": (Table("water levels", retention=None),)}, "not an identifier"),
        ({"datasets": (_dataset("Water levels"),)}, "dataset id"),
        ({"datasets": (_dataset("w", floor="people"),)}, "floor 'people' unknown"),
        ({"datasets": (_dataset("w", columns=("day", "day")),)}, "columns missing or repeated"),
        ({"datasets": (_dataset("w", served_at="a/b"),)}, "served_at needs"),
        ({"routes": (), "datasets": (_dataset("w", served_at="w"),)}, "served_at needs"),
    ],
)
def test_a_malformed_manifest_is_refused(changes: dict[str, object], why: str) -> None:
    with pytest.raises(ManifestError, match=why):
        domains.validate([_manifest("water", **changes)])
