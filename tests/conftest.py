"""Fixtures shared by every tier.

Integration and end-to-end tests talk to the stack that `townpulse up` started (its addresses are
in `.run/stack.env`); `make test` starts it first. Each test makes its own devices with unique
ids, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from testing.alerts_support import subscribe
from tests.broker_support import Broker
from tests.support import Publisher, RegisteredDevice
from townpulse.stack import REPO, SERVICES, Stack, read_env_file

TIER_ORDER = {"unit": 0, "integration": 1, "e2e": 2}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run cheap tiers first: unit, then integration, then end-to-end (which restart things)."""

    def tier(item: pytest.Item) -> int:
        for name, rank in TIER_ORDER.items():
            if item.get_closest_marker(name):
                return rank
        return 1

    items.sort(key=tier)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto of the test's own (a network server's broker), removed afterwards."""
    b = Broker(tmp_path)
    b.start()
    yield b
    b.remove()


@pytest.fixture(scope="session")
def stack() -> Stack:
    return Stack()


@pytest.fixture(scope="session")
def stack_env(stack: Stack) -> dict[str, str]:
    env = read_env_file(stack.stack_env_file)
    if "API_URL" not in env:
        pytest.fail(f"{stack.stack_env_file} missing: start the stack with `make up` first")
    return env


@pytest.fixture(scope="session")
def admin_key(stack_env: dict[str, str]) -> str:
    return Path(stack_env["ADMIN_API_KEY_FILE"]).read_text().strip()


@pytest.fixture
def api(stack_env: dict[str, str], admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack_env["API_URL"], headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
def service_urls(stack_env: dict[str, str]) -> dict[str, str]:
    """Every service's own address, by service name (the operator API's is "api")."""
    return {spec.name: stack_env[f"{spec.name.upper()}_URL"] for spec in SERVICES}


@pytest.fixture(scope="session")
def role_keys(stack_env: dict[str, str], admin_key: str) -> Iterator[dict[str, str]]:
    """A fresh key per role (viewer, operator, admin), revoked after the session."""
    made: dict[str, str] = {}
    ids: list[str] = []
    with httpx.Client(
        base_url=stack_env["API_URL"], headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    ) as admin:
        for role in ("viewer", "operator", "admin"):
            r = admin.post("/v1/api-keys", json={"name": f"test-{role}", "role": role})
            assert r.status_code == 201, r.text
            made[role] = r.json()["key"]
            ids.append(r.json()["id"])
        yield made
        for key_id in ids:
            admin.delete(f"/v1/api-keys/{key_id}")


@pytest.fixture
def device_factory(api: httpx.Client) -> Iterator[Callable[..., RegisteredDevice]]:
    """Registers devices with unique ids through the API; removes them afterwards."""
    made: list[str] = []

    def make(domain: str = "waste", *, prefix: str = "t") -> RegisteredDevice:
        device_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
        r = api.post("/v1/devices", json={"id": device_id, "domain": domain})
        assert r.status_code == 201, r.text
        creds = r.json()["mqtt"]
        made.append(device_id)
        return RegisteredDevice(
            id=device_id,
            domain=domain,
            username=creds["username"],
            password=creds["password"],
            topic=creds["topic"],
            host=creds["host"],
            port=creds["port"],
        )

    yield make
    for device_id in made:
        api.delete(f"/v1/devices/{device_id}")


@pytest.fixture
def subscriber(api: httpx.Client) -> Iterator[Callable[..., dict]]:
    """Subscribes through the API; deletes the subscriptions afterwards."""
    made: list[str] = []

    def make(url: str, **fields: object) -> dict:
        sub = subscribe(api, url, **fields)
        made.append(sub["id"])
        return sub

    yield make
    for sub_id in made:
        api.delete(f"/v1/webhooks/{sub_id}")


@pytest.fixture
def publisher_factory() -> Iterator[Callable[[RegisteredDevice], Publisher]]:
    made: list[Publisher] = []

    def make(device: RegisteredDevice) -> Publisher:
        p = Publisher(device)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


os.environ.setdefault("TOWNPULSE_RUN_DIR", str(REPO / ".run"))
