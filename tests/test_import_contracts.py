"""The import contracts (pyproject.toml, [tool.importlinter]) that `make lint` checks: the code
keeps them, and each one refuses a forbidden import added to a scratch copy of the sources."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from itertools import takewhile
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONFIG = PYPROJECT["tool"]["importlinter"]
CONTRACTS = {c["id"]: c["name"] for c in CONFIG["contracts"]}

# A lazy import (inside a function) is an import all the same.
LAZY = "\n\ndef _scratch() -> None:\n    import {module}\n"

# (contract, file the import is added to, module it imports, lazily?)
FORBIDDEN = [
    ("services-independent", "services/energy/settings.py", "services.waste.settings", False),
    (
        "services-independent",
        "services/alerts/dispatcher.py",
        "services.api.adapters.repository",
        True,
    ),
    ("domain-pure", "services/waste/domain/plan.py", "services.waste.adapters.db", False),
    ("domain-pure", "services/traffic/domain/counter.py", "services.traffic.routes", True),
    ("domain-pure", "services/energy/domain/meter.py", "services.energy.app", False),
    ("domain-pure", "services/alerts/domain/rules.py", "shared.db", True),
    # Through a shared module the domain imports: the whole chain counts.
    ("domain-pure", "shared/schemas.py", "shared.kafka", True),
    ("library-layers", "townpulse/cli.py", "services.api.app", False),
    ("library-layers", "shared/db.py", "services.storage.adapters.writer", True),
    ("library-layers", "services/gateway/app.py", "townpulse.stack.config", False),
    ("manifests-light", "services/energy/manifest.py", "services.energy.app", False),
    # Through the registry's module, which every manifest imports.
    ("manifests-light", "shared/domains.py", "shared.db", True),
    ("settings-light", "shared/settings.py", "shared.ml.calendar", True),
    ("product-alone", "shared/topics.py", "tests.support", False),
    ("product-alone", "services/api/app.py", "bench.report", True),
    ("product-alone", "townpulse/evaluation.py", "testing.prometheus", False),
    ("bench-without-tests", "bench/common.py", "tests.support", False),
    ("testing-below", "testing/prometheus.py", "bench.common", False),
    ("testing-below", "testing/alerts_support.py", "tests.conftest", True),
    ("acyclic", "shared/ml/cells.py", "shared.ml.forecast", True),
    ("acyclic", "townpulse/stack/config.py", "townpulse.together", False),
]


def _lint_imports(tree: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """`make lint`'s `lint-imports`, run in `tree` (it analyses the packages found there)."""
    args = [arg for c in contracts for arg in ("--contract", c)]
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())",
            "--no-cache",
            *args,
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        # Wide enough that no module name is wrapped; and the tree's packages, not an installed
        # copy, come first (lint-imports puts its working directory first on the path too).
        env={**os.environ, "COLUMNS": "300", "PYTHONPATH": str(tree)},
        check=False,
    )


def _all_but_python(directory: str, names: list[str]) -> list[str]:
    def keep(name: str) -> bool:
        return name.endswith(".py") or (Path(directory) / name).is_dir()

    return [n for n in names if n == "__pycache__" or not keep(n)]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's Python sources and its pyproject.toml, copied."""
    tree = tmp_path_factory.mktemp("sources")
    for package in CONFIG["root_packages"]:
        shutil.copytree(
            ROOT / package,
            tree / package,
            ignore=_all_but_python,
        )
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_make_lint_checks_the_contracts() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None and "lint-imports" in recipe.group(1)
    assert set(CONTRACTS) == {c for c, *_ in FORBIDDEN}  # every contract is shown refusing


def test_the_sources_keep_every_contract(scratch: Path) -> None:
    run = _lint_imports(scratch)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in run.stdout


@pytest.mark.parametrize(
    ("contract", "path", "module", "lazy"),
    FORBIDDEN,
    ids=[f"{c}:{p}->{m}" for c, p, m, _ in FORBIDDEN],
)
def test_a_forbidden_import_is_refused(
    scratch: Path, tmp_path: Path, contract: str, path: str, module: str, lazy: bool
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(scratch, tree)
    source = tree / path
    assert source.is_file() and (tree / (module.replace(".", "/") + ".py")).is_file()
    added = LAZY.format(module=module) if lazy else f"\nimport {module}\n"
    source.write_text(source.read_text(encoding="utf-8") + added, encoding="utf-8")

    run = _lint_imports(tree, contract)
    assert run.returncode != 0, run.stdout + run.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in run.stdout, run.stdout
    importer = path.removesuffix(".py").replace("/", ".")
    if contract == "acyclic":
        # The contract names the package holding the cycle, and which of its imports to cut.
        pairs = zip(importer.split("."), module.split("."), strict=False)
        package = ".".join(a for a, _ in takewhile(lambda pair: pair[0] == pair[1], pairs))
        assert f"No cycles are allowed in {package}." in run.stdout, run.stdout
    else:
        assert f"{importer} -> {module}" in run.stdout, run.stdout
