"""The domain registry: the registered manifests load, agree with the Domain enum and the
readings topics, are cheap to import, and a faulty or clashing manifest is refused."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.api import opendata
from services.api.console.routes import HERE as CONSOLE
from shared import domains
from shared.domains import (
    ConsolePage,
    Dataset,
    DomainManifest,
    ManifestError,
    Metric,
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
        # A port of its own per name (water 18647, rain 18526).
        service=ServicePart(module=f"services.{name}", default_port=18100 + sum(name.encode())),
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
        (_manifest("rain", service=ServicePart("services.water", 18526)), "service modules"),
        (_manifest("rain", service=ServicePart("services.rain", 18647)), "ports"),
        (_manifest("rain", metrics=(Metric("flow_ls", "l/s", 0, 1e4),)), "metrics"),
        (_manifest("rain", datasets=(_dataset("water-levels"),)), "datasets"),
    ],
)
def test_two_domains_may_not_declare_the_same_thing(second: DomainManifest, what: str) -> None:
    first = _manifest("water", metrics=(Metric("flow_ls", "l/s", 0, 1e4),))
    with pytest.raises(ManifestError, match=f"^{what} declared by more than one domain: "):
        domains.validate([first, second])


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"name": "Water"}, "not a lower-case identifier"),
        ({"routes": ("water/../admin",)}, "not a path segment"),
        ({"console": (ConsolePage("water", "water", "Water"),)}, "not /<segment>"),
        ({"tables": (Table("water levels", retention=None),)}, "not an identifier"),
        ({"service": ServicePart("services.water", 70000)}, "not a TCP port"),
        ({"metrics": (Metric("Flow l/s", None, 0, 1),)}, "not an identifier"),
        ({"metrics": (Metric("flow_ls", None, 1, 1),)}, "range is not lo < hi"),
        ({"metrics": (Metric("flow_ls", None, 0, float("inf")),)}, "range is not lo < hi"),
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


def test_a_domains_migrations_are_found_in_its_package_without_importing_it() -> None:
    with_branch = [m for m in domains.registered() if m.migrations]
    assert "lighting" in [m.name for m in with_branch]
    folders = domains.migration_folders(with_branch)
    for manifest, folder in zip(with_branch, folders, strict=True):
        package = ROOT / manifest.service.module.replace(".", "/")
        assert folder == package / "migrations"
        assert any(folder.glob("*.py")), folder
    # Energy's tables are in the platform's migrations: its package has no such folder.
    missing = _manifest("energy", service=ServicePart("services.energy", 18103), migrations=True)
    with pytest.raises(ManifestError, match=r"migrations folder .* does not exist"):
        domains.migration_folders([missing])


def test_each_domains_branch_builds_on_the_platforms_which_never_depends_on_it() -> None:
    """A domain's revisions form its own branch, labelled with its name and starting from a
    platform revision; the platform's (shared/migrations/versions) neither descend from nor
    depend on any of them, so the platform's chain stands without any domain's folder."""
    from alembic.script import ScriptDirectory

    from shared.db import MIGRATIONS_DIR, alembic_config

    def parents(revision: Any) -> set[str]:
        found: set[str] = set()
        for ids in (revision.down_revision, revision.dependencies):
            found.update((ids,) if isinstance(ids, str) else ids or ())
        return found

    script = ScriptDirectory.from_config(alembic_config("postgresql://nobody@localhost/none"))
    revisions = list(script.walk_revisions())

    def in_folder(folder: Path) -> set[str]:
        return {r.revision for r in revisions if Path(r.path).parent == folder}

    platform = in_folder(MIGRATIONS_DIR / "versions")
    with_branch = [m for m in domains.registered() if m.migrations]
    for manifest, folder in zip(with_branch, domains.migration_folders(), strict=True):
        own = [r for r in revisions if r.revision in in_folder(folder)]
        first = [r for r in own if not parents(r) & in_folder(folder)]
        # (Alembic's labels include those of the platform branches it descends from.)
        assert len(first) == 1 and manifest.name in first[0].branch_labels, manifest.name
        assert parents(first[0]) and parents(first[0]) <= platform
        assert script.get_revision(f"{manifest.name}@head") in own
    for revision in revisions:
        if revision.revision in platform:
            assert parents(revision) <= platform, revision.revision
