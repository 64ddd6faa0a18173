"""Which devices exist, and in which domain: held in memory, kept current by the database.

Looking a device up for every message cost the gateway about 15 % of its CPU (one query per
device per minute, bench/results/e2e_profile_gateway.txt). The registry now loads every device
once and follows the changes the devices table notifies (migration 0006); a message from a
device it does not know asks the database (a device registered a moment ago whose notification
is still on its way), and that answer is cached briefly so that a misconfigured device cannot
hammer the database. While the registry's own connection is down, every look-up asks the
database, as before.

Devices behind a network server or a vendor's cloud are named by their DevEUI or external id,
not by their TownPulse id: the registry answers those keys too, with what the gateway needs to
map their uplinks (profile and per-device settings such as a bin's depth).
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Gauge
from psycopg import AsyncConnection

from services.gateway.adapters.devices import Lookup, find_device, listen_and_load
from services.gateway.uplinks import DeviceInfo
from shared.db import Pool
from shared.stream.retry import retry_forever
from shared.topics import Domain

log = logging.getLogger(__name__)

APPLICATION_NAME = "townpulse-device-registry"  # how an operator spots it in pg_stat_activity
LOOKUPS = Counter(
    "townpulse_gateway_registry_lookups_total", "Device look-ups that asked the database"
)
HELD = Gauge("townpulse_gateway_registry_devices", "Devices held in memory (0 while not following)")


class DeviceRegistry:
    """The `Devices` the uplinks are mapped with (services/gateway/uplinks.py)."""

    def __init__(self, pool: Pool, *, conninfo: str, unknown_ttl_s: float) -> None:
        self._pool = pool
        self._conninfo = conninfo  # LISTEN holds a connection of its own, outside the pool
        self._unknown_ttl_s = unknown_ttl_s
        self._known: dict[str, DeviceInfo] = {}
        self._by_key: dict[str, str] = {}  # DevEUI or external id -> device id
        self._unknown: dict[str, float] = {}
        self._following = False
        HELD.set_function(lambda: len(self._known) if self._following else 0)

    @property
    def following(self) -> bool:
        """Whether the in-memory registry is complete and kept current."""
        return self._following

    def held(self, device_id: str) -> Domain | None:
        """What memory says of a device, without asking the database."""
        info = self._known.get(device_id) if self._following else None
        return info.domain if info is not None else None

    async def domain_of(self, device_id: str) -> Domain | None:
        """The device's domain, or None if it is not registered (or was deleted)."""
        info = await self.device(device_id)
        return info.domain if info is not None else None

    async def device(self, device_id: str) -> DeviceInfo | None:
        """The device by its TownPulse id, or None if it is not registered (or was deleted)."""
        if self._following:
            info = self._known.get(device_id)
            if info is not None:
                return info
        return await self._ask("id", device_id)

    async def by_key(self, key: str) -> DeviceInfo | None:
        """The device a network server or a vendor names `key` (DevEUI or external id)."""
        if self._following:
            device_id = self._by_key.get(key)
            if device_id is not None and (info := self._known.get(device_id)) is not None:
                return info
        return await self._ask("key", key)

    async def _ask(self, kind: Lookup, value: str) -> DeviceInfo | None:
        now = time.monotonic()
        cache_key = f"{kind}|{value}"
        if self._unknown.get(cache_key, 0.0) > now:
            return None
        LOOKUPS.inc()
        async with self._pool.connection() as conn:
            row = await find_device(conn, kind, value)
        if row is None:
            if len(self._unknown) > 100_000:  # bounded: ids come from the network
                self._unknown.clear()
            self._unknown[cache_key] = now + self._unknown_ttl_s
            return None
        # Not added to the registry: its notification does that, in order with a deletion.
        return DeviceInfo.of(row)

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
            infos = [DeviceInfo.of(r) for r in await listen_and_load(conn)]
            self._known = {i.id: i for i in infos}
            self._by_key = {k: i.id for i in infos for k in i.keys}
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
            row = await find_device(conn, "id", device_id)
        old = self._known.pop(device_id, None)
        for key in old.keys if old is not None else ():
            self._by_key.pop(key, None)
        if row is not None:
            info = DeviceInfo.of(row)
            self._known[device_id] = info
            self._by_key.update(dict.fromkeys(info.keys, device_id))
            for key in ("id|" + device_id, *("key|" + k for k in info.keys)):
                self._unknown.pop(key, None)
