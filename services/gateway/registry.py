"""Which devices exist, and in which domain: held in memory, kept current by the database.

Looking a device up for every message cost the gateway about 15 % of its CPU (one query per
device per minute, bench/results/e2e_profile_gateway.txt). The registry now loads every device
once and follows the changes the devices table notifies (migration 0006); a message from a
device it does not know asks the database (a device registered a moment ago whose notification
is still on its way), and that answer is cached briefly so that a misconfigured device cannot
hammer the database. While the registry's own connection is down, every look-up asks the
database, as before.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Gauge
from psycopg import AsyncConnection

from shared.db import Pool
from shared.stream.retry import retry_forever
from shared.topics import Domain

log = logging.getLogger(__name__)

CHANNEL = "townpulse_devices"
APPLICATION_NAME = "townpulse-device-registry"  # how an operator spots it in pg_stat_activity
LOOKUPS = Counter(
    "townpulse_gateway_registry_lookups_total", "Device look-ups that asked the database"
)
HELD = Gauge("townpulse_gateway_registry_devices", "Devices held in memory (0 while not following)")


class DeviceRegistry:
    def __init__(self, pool: Pool, *, conninfo: str, unknown_ttl_s: float) -> None:
        self._pool = pool
        self._conninfo = conninfo  # LISTEN holds a connection of its own, outside the pool
        self._unknown_ttl_s = unknown_ttl_s
        self._known: dict[str, Domain] = {}
        self._unknown: dict[str, float] = {}
        self._following = False
        HELD.set_function(lambda: len(self._known) if self._following else 0)

    @property
    def following(self) -> bool:
        """Whether the in-memory registry is complete and kept current."""
        return self._following

    def held(self, device_id: str) -> Domain | None:
        """What memory says of a device, without asking the database."""
        return self._known.get(device_id) if self._following else None

    async def domain_of(self, device_id: str) -> Domain | None:
        """The device's domain, or None if it is not registered (or was deleted)."""
        if self._following:
            domain = self._known.get(device_id)
            if domain is not None:
                return domain
        now = time.monotonic()
        if self._unknown.get(device_id, 0.0) > now:
            return None
        LOOKUPS.inc()
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT domain FROM devices WHERE id = %s AND deleted_at IS NULL", (device_id,)
            )
            row = await cur.fetchone()
        if row is None:
            if len(self._unknown) > 100_000:  # bounded: ids come from the network
                self._unknown.clear()
            self._unknown[device_id] = now + self._unknown_ttl_s
            return None
        # Not added to the registry: its notification does that, in order with a deletion.
        return Domain(row["domain"])

    async def follow(self) -> None:
        """Load every device, then apply each change; start again after a lost connection."""
        while True:
            await retry_forever(self._follow_once, what="following the device registry")

    async def _follow_once(self) -> None:
        # Keepalives: a registry that never hears of a lost connection would go stale quietly.
        conn = await AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            application_name=APPLICATION_NAME,
            keepalives_idle=30,
            keepalives_interval=10,
        )
        try:
            # LISTEN before loading: a change made while loading is applied afterwards.
            await conn.execute(f"LISTEN {CHANNEL}")
            cur = await conn.execute("SELECT id, domain FROM devices WHERE deleted_at IS NULL")
            self._known = {str(r[0]): Domain(r[1]) for r in await cur.fetchall()}
            self._unknown.clear()
            self._following = True
            log.info("device registry loaded", extra={"devices": len(self._known)})
            # Asked through the pool: the listening connection is busy while notifies() runs.
            async for note in conn.notifies():
                await self._apply(note.payload)
        finally:
            self._following = False
            await conn.close()

    async def _apply(self, device_id: str) -> None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT domain FROM devices WHERE id = %s AND deleted_at IS NULL", (device_id,)
            )
            row = await cur.fetchone()
        if row is None:
            self._known.pop(device_id, None)
        else:
            self._known[device_id] = Domain(row["domain"])
            self._unknown.pop(device_id, None)
