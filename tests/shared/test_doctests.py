"""The examples in the shared library's docstrings run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import services.alerts.domain.webhooks
import shared.http
import shared.logging
import shared.ml.registry
import shared.ml.timed
import shared.payloads
import shared.stream.retry

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "module",
    [
        services.alerts.domain.webhooks,
        shared.http,
        shared.logging,
        shared.ml.registry,
        shared.ml.timed,
        shared.payloads,
        shared.stream.retry,
    ],
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
