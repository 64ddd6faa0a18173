"""Which devices exist, and in which domain: a small TTL cache over the devices table."""

from __future__ import annotations

import time

from shared.db import Pool
from shared.topics import Domain


class DeviceRegistry:
    def __init__(self, pool: Pool, *, ttl_s: float, unknown_ttl_s: float) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._unknown_ttl_s = unknown_ttl_s
        self._cache: dict[str, tuple[Domain | None, float]] = {}

    async def domain_of(self, device_id: str) -> Domain | None:
        """The device's domain, or None if it is not registered (or was deleted)."""
        now = time.monotonic()
        hit = self._cache.get(device_id)
        if hit and hit[1] > now:
            return hit[0]
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT domain FROM devices WHERE id = %s AND deleted_at IS NULL", (device_id,)
            )
            row = await cur.fetchone()
        domain = Domain(row["domain"]) if row else None
        self._cache[device_id] = (domain, now + (self._ttl_s if domain else self._unknown_ttl_s))
        return domain
