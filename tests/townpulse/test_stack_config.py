"""The stack's services are the platform's own and one per registered domain, from its manifest
(townpulse/stack/config.py): the runner starts them, the API forwards their routes to them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared import domains
from tests.domain_support import extra_domain
from townpulse.stack.config import (
    COMPACT_MEMBERS,
    KEYS,
    SERVICES,
    StackSettings,
    domain_spec,
    service_specs,
)
from townpulse.stack.postgres import Postgres
from townpulse.stack.processes import Processes
from townpulse.stack.services import Services

pytestmark = pytest.mark.unit

PLATFORM = ["gateway", "storage", "api", "alerts"]


def test_each_registered_domain_is_a_service_between_the_api_and_alerts() -> None:
    names = [s.name for s in SERVICES]
    assert names == [*PLATFORM[:3], *domains.names(), PLATFORM[3]]
    for manifest in domains.registered():
        spec = next(s for s in SERVICES if s.name == manifest.name)
        assert (spec.module, spec.port_setting, spec.routes) == (
            manifest.service.module,
            manifest.port_setting,
            manifest.routes,
        )
        assert spec.mqtt_user is None


def test_a_fourth_domain_joins_the_service_list_from_its_manifest() -> None:
    lamps = extra_domain()
    specs = service_specs([*domains.registered(), lamps])
    assert [s.name for s in specs][-2:] == ["lamps", "alerts"]
    assert specs[-2] == domain_spec(lamps)
    assert specs[-2].routes == ("lamps",)
    assert [s.name for s in service_specs([])] == PLATFORM


def test_each_domains_port_is_a_stack_setting_defaulting_to_its_manifests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for manifest in domains.registered():
        monkeypatch.delenv(f"TOWNPULSE_{manifest.name.upper()}_PORT", raising=False)
    settings = StackSettings()
    for manifest in domains.registered():
        assert getattr(settings, manifest.port_setting) == manifest.service.default_port


def test_a_domains_port_is_overridden_by_its_variable_or_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TOWNPULSE_<NAME>_PORT, as the stack's other ports (TOWNPULSE_ENERGY_PORT as before)."""
    overrides = {m.name: 30_000 + i for i, m in enumerate(domains.registered())}
    for name, port in overrides.items():
        monkeypatch.setenv(f"TOWNPULSE_{name.upper()}_PORT", str(port))
    settings = StackSettings()
    assert {m.name: getattr(settings, m.port_setting) for m in domains.registered()} == overrides
    assert StackSettings(energy_port=30_999).energy_port == 30_999
    monkeypatch.setenv("TOWNPULSE_LIGHTING_PORT", "70000")
    with pytest.raises(ValidationError, match="lighting_port"):
        StackSettings()


def test_domain_services_hold_the_checkpoint_key_and_share_the_compact_process() -> None:
    assert KEYS["checkpoint-key"][1] == domains.names()
    assert domains.names() == COMPACT_MEMBERS


def test_the_api_forwards_each_domains_routes_to_its_service(tmp_path: Path) -> None:
    procs = Processes(tmp_path)
    settings = StackSettings(run_dir=tmp_path)
    services = Services(
        procs,
        settings,
        database_url=Postgres(procs, settings).role_url,
        ca_cert_file=tmp_path / "ca",
    )
    upstreams = services.upstreams()
    for manifest in domains.registered():
        port = getattr(settings, manifest.port_setting)
        for route in manifest.routes:
            assert upstreams[route] == f"http://127.0.0.1:{port}", route
    routes = [r for s in SERVICES for r in s.routes]
    assert sorted(upstreams) == sorted(routes)
    assert len(routes) == len(set(routes))


def test_a_domain_service_run_alone_listens_on_its_manifests_port() -> None:
    """`python -m services.<name>` without the stack's environment: the port the stack would
    give it (its own settings' default, services/<name>/settings.py)."""
    import importlib

    from pydantic_settings import BaseSettings

    for manifest in domains.registered():
        module = importlib.import_module(f"{manifest.service.module}.settings")
        (settings,) = (
            v
            for v in vars(module).values()
            if isinstance(v, type)
            and issubclass(v, BaseSettings)
            and v.__module__ == module.__name__
            and "http_port" in v.model_fields
        )
        assert settings.model_fields["http_port"].default == manifest.service.default_port
