"""A fourth domain registered in-process (a fake one, with a scratch table): what the tests of
the wiring computed from manifests (erasure, retention, the stack, the console) register to see
that a new domain is picked up from its manifest alone."""

from __future__ import annotations

import uuid

import pytest

from shared import domains
from shared.domains import ConsolePage, DomainManifest, ServicePart, Table


def extra_domain(*, table: str | None = None, retention: str = "forecasts") -> DomainManifest:
    """A domain the platform does not have: one table (a device column, an age column `ts`)."""
    table = table or f"lamps_{uuid.uuid4().hex[:8]}"
    return DomainManifest(
        name="lamps",
        topic="readings.lamps",
        service=ServicePart(module="services.lamps", default_port=18199),
        tables=(
            Table(table, retention=retention, age="ts"),
            Table(f"{table}_plans", retention=None, device_column=None),
        ),
        routes=("lamps",),
        console=(ConsolePage("/lamps", "lamps", "Lamps"),),
    )


def register(monkeypatch: pytest.MonkeyPatch, manifest: DomainManifest) -> None:
    """`manifest` registered after the real domains, for the rest of the test."""
    manifests = domains.validate([*domains.registered(), manifest])
    monkeypatch.setattr(domains, "registered", lambda: manifests)
