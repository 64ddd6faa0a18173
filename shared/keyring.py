"""API keys checked on a connection of their own, and the keys found good kept in memory a while.

Looking a key up per request gave each request with a well-formed key one of the service's pool
connections before the key was known to be good: a flood of made-up keys held them all and the
genuine requests got 500s (issue 27). Here a key is checked by one query on a connection that
nothing else uses, and a key found good is trusted for `ttl_s` without asking again: the
routes' pool is never touched before a key is verified, and a flood of made-up keys costs at
most one query at a time, on that connection (and is throttled by the Gate).

The check is the database's `townpulse_api_key_role(id, hash)` (migration 0009): only the API's
role reads the table of hashes; every other service asks whether the hash it computed is the
stored one. So the memory holds (key id, hash of the presented key) -> role for keys that were
good, never the table.

Revocation: the operator API forgets a key the moment it revokes it (`forget`); another service
stops trusting it within `ttl_s`. Operators reach the domain services through the API, which
refuses the revoked key at once.
"""

from __future__ import annotations

import logging
import time

from pydantic import SecretStr

from shared.auth import Role
from shared.db import create_pool

log = logging.getLogger(__name__)
# Good keys remembered at most: a town has tens; a bound all the same (one entry per key id, the
# newest hash presented with it).
MAX_KEYS = 10_000


class KeyRing:
    def __init__(self, database_url: SecretStr, *, ttl_s: float) -> None:
        # One connection: a check is one short query, and nothing else uses it.
        self._pool = create_pool(database_url, min_size=1, max_size=1)
        self._ttl_s = ttl_s
        # key id -> (hash of the key found good, its role, when the check began)
        self._good: dict[str, tuple[bytes, Role, float]] = {}
        # key id -> when this process revoked it: a check that began before must not bring the
        # key back.
        self._revoked: dict[str, float] = {}

    async def open(self) -> None:
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()

    async def role_of(self, key_id: str, presented: bytes) -> Role | None:
        """The key's role if `presented` (the hash of the key given) is an active key's hash;
        raises if the database cannot be asked."""
        now = time.monotonic()
        known = self._good.get(key_id)
        if known is not None and known[0] == presented and now - known[2] <= self._ttl_s:
            return known[1]
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT townpulse_api_key_role(%s, %s) AS role", (key_id, presented)
            )
            row = await cur.fetchone()
        role = None if row is None or row["role"] is None else Role(row["role"])
        if role is None:
            return None
        if self._revoked.get(key_id, -float("inf")) < now:
            if len(self._good) >= MAX_KEYS:
                self._good.pop(next(iter(self._good)))
            self._good[key_id] = (presented, role, now)
        return role

    def remember(self, key_id: str, key_hash: bytes, role: Role) -> None:
        """A key this process just made: trusted here at once."""
        self._revoked.pop(key_id, None)
        self._good[key_id] = (key_hash, role, time.monotonic())

    def forget(self, key_id: str) -> None:
        """A key this process just revoked stops working here now, not after `ttl_s`."""
        self._good.pop(key_id, None)
        self._revoked[key_id] = time.monotonic()
        if len(self._revoked) > MAX_KEYS:
            self._revoked.pop(next(iter(self._revoked)))
