"""The examples in the simulator's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

pytestmark = pytest.mark.unit

MODULES = [
    "calendar_fr",
    "durations",
    "energy",
    "events",
    "lorawan",
    "noise",
    "profiles",
    "readings",
    "runner",
    "town",
    "traffic",
    "waste",
    "weather",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"townpulse.simulator.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
