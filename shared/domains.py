"""Domains as plug-ins: what each domain declares about itself, and the registry that reads it.

A domain (energy, waste, traffic...) is one package under services/ with a `manifest.py` that
holds a `MANIFEST`, a `DomainManifest`: pure data, cheap to import. The platform's wiring that
used to name each domain by hand is computed from the registered manifests: the tables erasure
clears and retention prunes (shared/erasure.py, shared/retention.py), the readings topics
(shared/topics.py), the stack's services and the routes the operator API forwards to them
(townpulse/stack/config.py), the console's navigation (services/api/console/routes.py) and the
open-data datasets (services/api/opendata.py).

Registering a domain is one line in services/domains.py (docs/domains.md). The registry loads
the manifests by name at run time, so that shared/ (the library under services/) imports no
service; a manifest imports nothing but this module.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# The module that lists the registered domains' manifests (its `MANIFESTS`, dotted names).
REGISTRATION = "services.domains"

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_PATH_SEGMENT_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# The folder of a domain's package holding its own Alembic branch (`migrations=True`).
MIGRATIONS_FOLDER = "migrations"
_METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Dataset ids are the open-data URLs' last segment (services/api/routes/opendata.py DatasetId).
_DATASET_ID_RE = re.compile(r"^[a-z0-9-]{1,64}$")
# What an open-data row may aggregate at least the town's minimum of (TOWNPULSE_OPEN_DATA_MIN_*).
FLOORS = ("devices", "vehicles")


@dataclass(frozen=True, slots=True)
class Table:
    """A table the domain writes: what erasure and retention need to know of it.

    `retention` names a data class of shared/retention.py (its TOWNPULSE_RETENTION_<CLASS>_DAYS
    setting) and `age` the column giving a row's age in it; the class `deleted_device_state`
    ages rows by their device's deletion instead, and needs no `age`. `policy`: a TimescaleDB
    hypertable, pruned by a retention policy there. `device_column`: the column naming the
    device, whose rows erasing a device deletes (None: the table names no device).
    """

    name: str
    retention: str | None
    age: str | None = None
    policy: bool = False
    device_column: str | None = "device_id"


@dataclass(frozen=True, slots=True)
class ConsolePage:
    """A page of the operator console: its path, its template (services/api/console/templates)
    and its navigation label (a msgid of the console's catalogues)."""

    path: str
    template: str
    label: str


@dataclass(frozen=True, slots=True)
class Dataset:
    """An open-data dataset made of the domain's data, which admins may publish
    (services/api/opendata.py; docs/open-data.md).

    `floor`: what each row aggregates at least the town's minimum of (one of FLOORS), so that
    no device's or person's behaviour shows; None only for rows made of no device's data (the
    council's lighting schedule). `resolution`: a row's period, ISO 8601 (DCAT's temporal
    resolution). `served_at`: where the domain's service serves the rows without a key, a path
    segment under its first route (`/v1/<route>/<served_at>`, answering `{"start", "end",
    "items"}`); None: the operator API queries the database itself
    (services/api/adapters/repository.py, the query keyed by the dataset's id).
    """

    id: str
    title: str
    description: str
    keywords: tuple[str, ...]
    columns: tuple[str, ...]
    floor: str | None
    resolution: str
    served_at: str | None = None


@dataclass(frozen=True, slots=True)
class ServicePart:
    """How the stack runs the domain's service: `python -m <module>`, listening on
    `default_port` unless the stack's setting `<name>_port` (TOWNPULSE_<NAME>_PORT) says
    otherwise (townpulse/stack/config.py StackSettings, which has one such field per manifest).
    """

    module: str
    default_port: int


@dataclass(frozen=True, slots=True)
class Metric:
    """A reading's metric that only this domain's devices send (the gateway's device profiles
    may map a decoded field to it): its unit, and its physical range, outside of which a value
    is a sensor or mapping fault and the gateway refuses the uplink."""

    name: str
    unit: str | None
    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class DomainManifest:
    """Everything the platform's wiring needs of one domain (docs/domains.md).

    `routes`: first path segments under /v1/ that the operator API forwards to the service.
    `datasets`: the open-data datasets made of the domain's data (services/api/opendata.py).
    `metrics`: the readings' metrics only this domain has (the gateway adds them
    to its own). `migrations`: the service's package has a `migrations/` folder holding the
    domain's own Alembic branch (its first revision labelled with the domain's name), applied
    with the platform's (shared.db.migrate); False: its tables are in the platform's migrations.
    """

    name: str
    topic: str
    service: ServicePart
    tables: tuple[Table, ...] = ()
    routes: tuple[str, ...] = ()
    console: tuple[ConsolePage, ...] = ()
    datasets: tuple[Dataset, ...] = ()
    metrics: tuple[Metric, ...] = ()
    migrations: bool = False

    @property
    def port_setting(self) -> str:
        """The stack's setting (and TOWNPULSE_<NAME>_PORT variable) of the service's port."""
        return f"{self.name}_port"


class ManifestError(ValueError):
    pass


def _duplicates(values: Iterable[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


def validate(manifests: Sequence[DomainManifest]) -> tuple[DomainManifest, ...]:
    """The manifests, checked on their own and against each other; ManifestError says why not.

    >>> service = ServicePart("svc.water", default_port=18120)
    >>> validate([DomainManifest("water", "readings.water", service)])[0].name
    'water'
    >>> validate([DomainManifest("Water!", "readings.water", service)])
    Traceback (most recent call last):
    ...
    shared.domains.ManifestError: domain name 'Water!' is not a lower-case identifier
    """
    for m in manifests:
        if not _NAME_RE.match(m.name):
            raise ManifestError(f"domain name {m.name!r} is not a lower-case identifier")
        for segment in m.routes:
            if not _PATH_SEGMENT_RE.match(segment):
                raise ManifestError(f"{m.name}: route {segment!r} is not a path segment")
        for page in m.console:
            if not page.path.startswith("/") or not _PATH_SEGMENT_RE.match(page.path[1:]):
                raise ManifestError(f"{m.name}: console path {page.path!r} is not /<segment>")
        for table in m.tables:
            if not _NAME_RE.match(table.name):
                raise ManifestError(f"{m.name}: table {table.name!r} is not an identifier")
        if not 1 <= m.service.default_port <= 65535:
            raise ManifestError(f"{m.name}: port {m.service.default_port} is not a TCP port")
        for metric in m.metrics:
            if not _METRIC_RE.match(metric.name):
                raise ManifestError(f"{m.name}: metric {metric.name!r} is not an identifier")
            bounds = (metric.lo, metric.hi)
            if not (all(map(math.isfinite, bounds)) and metric.lo < metric.hi):
                raise ManifestError(f"{m.name}: metric {metric.name}'s range is not lo < hi")
        for dataset in m.datasets:
            _check_dataset(m, dataset)
    checks = {
        "domain names": [m.name for m in manifests],
        "topics": [m.topic for m in manifests],
        "tables": [t.name for m in manifests for t in m.tables],
        "routes": [r for m in manifests for r in m.routes],
        "console paths": [p.path for m in manifests for p in m.console],
        "datasets": [d.id for m in manifests for d in m.datasets],
        "service modules": [m.service.module for m in manifests],
        "ports": [str(m.service.default_port) for m in manifests],
        "metrics": [x.name for m in manifests for x in m.metrics],
    }
    for what, values in checks.items():
        if dup := _duplicates(values):
            raise ManifestError(f"{what} declared by more than one domain: {', '.join(dup)}")
    return tuple(manifests)


def _check_dataset(m: DomainManifest, dataset: Dataset) -> None:
    if not _DATASET_ID_RE.match(dataset.id):
        raise ManifestError(f"{m.name}: dataset id {dataset.id!r} is not [a-z0-9-]{{1,64}}")
    if dataset.floor is not None and dataset.floor not in FLOORS:
        raise ManifestError(f"{m.name}: dataset {dataset.id}: floor {dataset.floor!r} unknown")
    if not dataset.columns or len(set(dataset.columns)) != len(dataset.columns):
        raise ManifestError(f"{m.name}: dataset {dataset.id}: columns missing or repeated")
    if dataset.served_at is not None and (
        not m.routes or not _PATH_SEGMENT_RE.match(dataset.served_at)
    ):
        raise ManifestError(
            f"{m.name}: dataset {dataset.id}: served_at needs a route and a path segment"
        )


def load(modules: Sequence[str]) -> tuple[DomainManifest, ...]:
    """The `MANIFEST` of each module (dotted names), validated, in the given order."""
    manifests = []
    for name in modules:
        manifest = getattr(importlib.import_module(name), "MANIFEST", None)
        if not isinstance(manifest, DomainManifest):
            raise ManifestError(f"{name} holds no MANIFEST (a shared.domains.DomainManifest)")
        manifests.append(manifest)
    return validate(manifests)


@functools.cache
def registered() -> tuple[DomainManifest, ...]:
    """The registered domains (services/domains.py), loaded once per process."""
    modules: Sequence[str] = importlib.import_module(REGISTRATION).MANIFESTS
    return load(modules)


def names() -> tuple[str, ...]:
    """The registered domains' names, in registration order."""
    return tuple(m.name for m in registered())


def migration_folders(manifests: Sequence[DomainManifest] | None = None) -> tuple[Path, ...]:
    """The folders of the domains' own Alembic branches (Alembic's `version_locations`, beside
    the platform's shared/migrations/versions), found without importing the service packages."""
    folders = []
    for m in registered() if manifests is None else manifests:
        if not m.migrations:
            continue
        spec = importlib.util.find_spec(m.service.module)
        locations = spec.submodule_search_locations if spec else None
        if not locations:
            raise ManifestError(f"{m.name}: service module {m.service.module} is not a package")
        # One name for every domain: pyproject.toml installs services/*/migrations/*.py.
        folder = Path(next(iter(locations))) / MIGRATIONS_FOLDER
        if not folder.is_dir():
            raise ManifestError(f"{m.name}: its migrations folder {folder} does not exist")
        folders.append(folder)
    return tuple(folders)
