"""The Gate checks keys against the service's copy of the key table (shared/keyring.py), on the
real database: no request touches the service's own pool before its key is verified, a key made
in the table works on its first use, a revoked one stops at once where it was revoked (and
elsewhere within the copy's TTL, not tested: a wait)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from shared.auth import Role, new_api_key
from shared.http import Viewer, secure
from shared.settings import ServiceSettings

pytestmark = pytest.mark.integration


class UntouchablePool:
    """Stands for the routes' pool: authentication must never ask it for a connection."""

    def connection(self) -> None:
        raise AssertionError("the routes' pool was used before the key was verified")


@pytest.fixture
async def client(stack_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()

    @app.get("/things")
    async def things(_: Viewer) -> list[str]:
        return []

    settings = ServiceSettings(dev_mode=True, database_url=SecretStr(stack_env["DATABASE_URL"]))
    secure(app, settings=settings)
    app.state.pool = UntouchablePool()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("2001:db8::7", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


async def test_keys_are_verified_without_the_routes_pool(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    for _ in range(5):
        made_up = f"tp_{secrets.token_hex(6)}_{secrets.token_urlsafe(24)}"
        r = await client.get("/things", headers={"Authorization": f"Bearer {made_up}"})
        assert r.status_code == 401
    r = await client.get("/things", headers={"Authorization": f"Bearer {admin_key}"})
    assert r.status_code == 200


async def test_a_key_made_in_the_table_works_at_once_and_a_revoked_one_stops_at_once(
    client: httpx.AsyncClient, stack_env: dict[str, str], admin_key: str
) -> None:
    admin = {"Authorization": f"Bearer {admin_key}"}
    # The copy was just read (the admin key's check)...
    assert (await client.get("/things", headers=admin)).status_code == 200
    key = new_api_key()
    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_keys (id, name, role, key_hash) VALUES (%s, %s, %s, %s)",
            (key.key_id, "keyring-test", Role.VIEWER.value, key.key_hash),
        )
    try:
        headers = {"Authorization": f"Bearer {key.token}"}
        # ...and the new key still works on its first use.
        assert (await client.get("/things", headers=headers)).status_code == 200
        # Revoked as the API's route does: committed, then forgotten.
        with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (key.key_id,))
        client.app.state.keyring.forget(key.key_id)  # type: ignore[attr-defined]
        assert (await client.get("/things", headers=headers)).status_code == 401
    finally:
        with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("DELETE FROM api_keys WHERE id = %s", (key.key_id,))
