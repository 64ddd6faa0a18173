"""Every alert kind a domain service can raise is explained in that domain's page (issue #24: what
it means, when it fires, what a miss costs), and the page explains no kind the code lacks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared import domains

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
# The register's algorithm ids (`energy.forecast`...) live in algorithms.py: they are no alerts.
NOT_ALERTS = {"algorithms.py"}


def kinds_in_code(domain: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "services" / domain).rglob("*.py"):
        if path.name not in NOT_ALERTS:
            found |= set(re.findall(rf'"({domain}\.[a-z_]+)"', path.read_text()))
    return found


def kinds_in_table(domain: str) -> set[str]:
    """The kinds of the page's alert table: rows starting with the kind in backquotes."""
    text = (ROOT / "docs" / f"{domain}.md").read_text()
    return set(re.findall(rf"^\| `({domain}\.[a-z_]+)`", text, flags=re.MULTILINE))


@pytest.mark.parametrize("domain", domains.names())
def test_every_alert_kind_is_explained_in_its_domain_page(domain: str) -> None:
    code = kinds_in_code(domain)
    assert len(code) >= 4, code  # the scan found the kinds (the services raise four or five)
    assert kinds_in_table(domain) == code, f"docs/{domain}.md's alert table vs the code"
