"""Which MQTT identity the local stack gives each service process."""

from __future__ import annotations

from pathlib import Path

import pytest

from townpulse.stack import SERVICES, StackSettings
from townpulse.stack.processes import Processes
from townpulse.stack.services import Services

pytestmark = pytest.mark.unit


def _services(tmp_path: Path, gateways: int) -> Services:
    return Services(
        Processes(tmp_path),
        StackSettings(run_dir=tmp_path, gateways=gateways),
        database_url=lambda role: f"postgresql://{role}@127.0.0.1:1/none",
        ca_cert_file=tmp_path / "ca.crt",
    )


def test_each_gateway_instance_has_its_own_identity_bound_to_its_client_id(
    tmp_path: Path,
) -> None:
    services = _services(tmp_path, gateways=3)
    gateway = next(s for s in SERVICES if s.name == "gateway")
    envs = [services.env(gateway, instance=i) for i in (1, 2, 3)]
    # The username is the instance name, which the gateway uses as its client id.
    assert [e["TOWNPULSE_MQTT_USERNAME"] for e in envs] == ["gateway-1", "gateway-2", "gateway-3"]
    assert [e["TOWNPULSE_INSTANCE"] for e in envs] == ["gateway-1", "gateway-2", "gateway-3"]
    # One password between them (the gateway role's), from the stack's secrets.
    assert len({e["TOWNPULSE_MQTT_PASSWORD"] for e in envs}) == 1


def test_only_the_gateway_and_the_api_get_broker_credentials(tmp_path: Path) -> None:
    services = _services(tmp_path, gateways=1)
    users = {s.name: services.env(s).get("TOWNPULSE_MQTT_USERNAME") for s in SERVICES}
    assert {name: user for name, user in users.items() if user} == {
        "gateway": "gateway-1",
        "api": "admin",
    }
