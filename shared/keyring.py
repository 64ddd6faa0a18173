"""Every active API key's hash and role, held in memory and checked without a database round trip.

Looking a key up per request gave each request with a well-formed key one of the service's pool
connections before the key was known to be good: a flood of made-up keys held them all and the
genuine requests got 500s (issue 27). Here the whole `api_keys` table (a town has tens of keys)
is read by one query on a connection of its own: when the copy is older than `ttl_s`, and when
a key id comes in that the copy does not hold. Requests that miss at the same time share one
read (each waits for a read that began after it arrived, so a key made a moment ago anywhere
works at once), and a flood of made-up ids costs at most one query at a time, on that
connection, never one of the pool the routes use.

Revocation: the operator API forgets a key the moment it revokes it (`forget`); a service that
only reads the table sees a revocation within `ttl_s`. Operators reach the domain services
through the API, which refuses the revoked key at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from pydantic import SecretStr

from shared.auth import Role
from shared.db import create_pool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredKey:
    role: Role
    key_hash: bytes


class KeyRing:
    def __init__(self, database_url: SecretStr, *, ttl_s: float) -> None:
        # One connection: a refresh is one short query, and nothing else uses it.
        self._pool = create_pool(database_url, min_size=1, max_size=1)
        self._ttl_s = ttl_s
        self._keys: dict[str, StoredKey] = {}
        # When the read behind the copy began: what it holds was committed before then.
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()
        # This process's own changes (a key made: its entry; revoked: None) since a refresh
        # began: that refresh may have read the table before they were committed, and must
        # neither lose a new key nor bring a revoked one back.
        self._changes: dict[str, tuple[float, StoredKey | None]] = {}

    async def open(self) -> None:
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()

    async def lookup(self, key_id: str) -> StoredKey | None:
        """The key's hash and role if it is active; raises if the database cannot be asked."""
        arrived = time.monotonic()
        if arrived - self._read_at > self._ttl_s:
            await self._refresh(unless_read_since=arrived - self._ttl_s)
        found = self._keys.get(key_id)
        if found is None:
            await self._refresh(unless_read_since=arrived)
            found = self._keys.get(key_id)
        return found

    def remember(self, key_id: str, key: StoredKey) -> None:
        """A key this process just made works here at once, not after the next refresh."""
        self._keys[key_id] = key
        self._changes[key_id] = (time.monotonic(), key)

    def forget(self, key_id: str) -> None:
        """A key this process just revoked stops working here now, not at the next refresh."""
        self._keys.pop(key_id, None)
        self._changes[key_id] = (time.monotonic(), None)

    async def _refresh(self, *, unless_read_since: float) -> None:
        async with self._lock:
            # A read that began after `unless_read_since` has completed while this one waited
            # for the lock: it already holds whatever was committed before then.
            if self._read_at >= unless_read_since:
                return
            started = time.monotonic()
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT id, role, key_hash FROM api_keys WHERE revoked_at IS NULL"
                )
                rows = await cur.fetchall()
            keys = {
                r["id"]: StoredKey(role=Role(r["role"]), key_hash=bytes(r["key_hash"]))
                for r in rows
            }
            self._changes = {k: c for k, c in self._changes.items() if c[0] >= started}
            for key_id, (_, change) in self._changes.items():
                if change is None:
                    keys.pop(key_id, None)
                else:
                    keys[key_id] = change
            self._keys = keys
            self._read_at = started
