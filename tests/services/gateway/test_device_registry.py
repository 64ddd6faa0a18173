"""The gateway's device registry against the stack's PostgreSQL: in memory, kept current."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from services.gateway.registry import APPLICATION_NAME, DeviceRegistry
from shared.db import create_pool
from shared.topics import Domain
from tests.support import until

pytestmark = pytest.mark.integration


def _lookups() -> float:
    return REGISTRY.get_sample_value("townpulse_gateway_registry_lookups_total") or 0.0


@pytest.fixture
async def registry(stack_env: dict[str, str]) -> AsyncIterator[DeviceRegistry]:
    url = stack_env["DATABASE_URL"]
    pool = create_pool(SecretStr(url), max_size=2)
    await pool.open()
    reg = DeviceRegistry(pool, conninfo=url, unknown_ttl_s=60)
    task = asyncio.create_task(reg.follow())
    try:
        await until(lambda: reg.following, within_s=10, what="the registry to load")
        yield reg
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()


async def test_registered_and_deleted_devices_are_known_without_a_query(
    registry: DeviceRegistry, api: httpx.Client
) -> None:
    device_id = f"reg-{uuid.uuid4().hex[:8]}"
    r = await asyncio.to_thread(api.post, "/v1/devices", json={"id": device_id, "domain": "waste"})
    assert r.status_code == 201, r.text
    try:
        # The notification arrives: from then on the device is answered from memory.
        await until(
            lambda: registry.held(device_id) is Domain.WASTE,
            within_s=10,
            what="the registration notified",
        )
        before = _lookups()
        for _ in range(100):
            assert await registry.domain_of(device_id) is Domain.WASTE
        assert _lookups() == before
    finally:
        r = await asyncio.to_thread(api.delete, f"/v1/devices/{device_id}")
        assert r.status_code == 204, r.text
    await until(lambda: registry.held(device_id) is None, within_s=10, what="the deletion notified")
    assert await registry.domain_of(device_id) is None


async def test_an_unknown_device_asks_the_database_once_per_ttl(registry: DeviceRegistry) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    before = _lookups()
    for _ in range(50):
        assert await registry.domain_of(ghost) is None
    assert _lookups() == before + 1


async def test_a_lost_connection_is_followed_again_and_lookups_go_on_meanwhile(
    registry: DeviceRegistry, api: httpx.Client, stack_env: dict[str, str]
) -> None:
    device_id = f"reg-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as admin:
        killed = admin.execute(
            # This test's registry only (it connects as the owner): the gateway service's own,
            # under its own role, is not ours to end.
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND usename = current_user",
            (APPLICATION_NAME,),
        ).fetchall()
    assert killed, "the registry's LISTEN connection was not found"
    await until(lambda: not registry.following, within_s=10, what="the loss to be noticed")
    # Registered while the registry is not following: asked of the database, then loaded.
    body = {"id": device_id, "domain": "traffic"}
    r = await asyncio.to_thread(api.post, "/v1/devices", json=body)
    assert r.status_code == 201, r.text
    try:
        assert await registry.domain_of(device_id) is Domain.TRAFFIC
        await until(lambda: registry.following, within_s=30, what="following again")
        assert registry.held(device_id) is Domain.TRAFFIC
    finally:
        await asyncio.to_thread(api.delete, f"/v1/devices/{device_id}")
