"""The examples in the product's docstrings run: every module of shared/, services/ and
townpulse/ that has one (a listed few once let two broken examples and a new one go unrun)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for package in ("shared", "services", "townpulse")
    for path in (ROOT / package).rglob("*.py")
    # A __main__ module starts its service when imported.
    if path.name != "__main__.py" and ">>> " in path.read_text(encoding="utf-8")
)


def test_the_examples_are_found() -> None:
    assert {"shared.http", "services.waste.domain.plan", "shared.ml.weekly"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
