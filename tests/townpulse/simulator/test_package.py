"""The simulator package has no import cycle: its package module imports none of its modules
(a module importing `townpulse.simulator` would otherwise run it, and through it the modules
that import that module, before itself)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import townpulse.simulator

pytestmark = pytest.mark.unit

PACKAGE = Path(townpulse.simulator.__file__).parent


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.append(node.module)
    return found


def test_the_package_module_imports_none_of_its_modules() -> None:
    assert not [m for m in _imports(PACKAGE / "__init__.py") if m.startswith("townpulse")]


@pytest.mark.parametrize("module", sorted(m.name for m in pkgutil.iter_modules([str(PACKAGE)])))
def test_each_module_imports_alone_in_a_fresh_interpreter(module: str) -> None:
    # A cycle through the package shows as a partly initialised module when one of its members
    # is imported first; each is imported first here, in its own interpreter.
    name = f"townpulse.simulator.{module}"
    done = subprocess.run(
        [sys.executable, "-c", f"import {name}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=PACKAGE.parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert importlib.import_module(name).__name__ == name
