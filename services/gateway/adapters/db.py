"""The gateway's SQL: profiles and codecs, heard devices, counters' last totals, integrations."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from psycopg.types.json import Jsonb

from services.gateway.ingest.codec import (
    RepositoryCodec,
    list_repository_codecs,
    load_repository_codec,
    repository_codec_name,
)
from services.gateway.ingest.profile import Profile, ProfileError, parse_profile, shipped_profiles
from services.gateway.ingest.uplink import Uplink
from services.gateway.uplinks import StoredCodec
from shared.db import Pool

log = logging.getLogger(__name__)

# Profiles and codecs change rarely and only through the gateway's own routes, which drop the
# cached copy at once; other gateway instances see a change within this many seconds.
CATALOGUE_TTL_S = 10.0

T = TypeVar("T")


class DbCatalogue:
    def __init__(self, pool: Pool, *, ttl_s: float = CATALOGUE_TTL_S) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._profiles: dict[str, tuple[float, Profile | None]] = {}
        self._codecs: dict[str, tuple[float, StoredCodec | None]] = {}

    def forget(self) -> None:
        self._profiles.clear()
        self._codecs.clear()

    async def profile(self, name: str) -> Profile | None:
        return await self._cached(self._profiles, name, self._load_profile)

    async def codec(self, name: str) -> StoredCodec | None:
        return await self._cached(self._codecs, name, self._load_codec)

    async def _cached(
        self,
        cache: dict[str, tuple[float, T | None]],
        name: str,
        load: Callable[[str], Awaitable[T | None]],
    ) -> T | None:
        now = time.monotonic()
        cached = cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await load(name)
        if len(cache) > 10_000:  # names come from devices' rows and requests: bounded
            cache.clear()
        cache[name] = (now + self._ttl_s, found)
        return found

    async def _load_profile(self, name: str) -> Profile | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT definition FROM device_profiles WHERE name = %s", (name,)
            )
            row = await cur.fetchone()
        if row is None:
            return None
        try:
            return parse_profile(row["definition"])
        except ProfileError as exc:
            # Saved through the routes, which validate: only a hand edit gets here.
            log.error("profile %r in the database is invalid: %s", name, exc)
            return None

    async def _load_codec(self, name: str) -> StoredCodec | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT name, version, script FROM codecs WHERE name = %s"
                " ORDER BY version DESC LIMIT 1",
                (name,),
            )
            row = await cur.fetchone()
        return StoredCodec(row["name"], row["version"], row["script"]) if row else None


class HeardDevices:
    """Uplinks from devices nobody registered, for the console's "heard, not registered".

    Written at most once per key every `every_s`, and at most `per_second` keys a second: an
    unregistered device that talks a lot, or a flood of invented DevEUIs, must not turn into a
    write per message (each is still dead-lettered).
    """

    def __init__(
        self,
        pool: Pool,
        *,
        every_s: float = 30.0,
        max_keys: int = 10_000,
        per_second: int = 20,
    ) -> None:
        self._pool = pool
        self._every_s = every_s
        self._max_keys = max_keys
        self._per_second = per_second
        self._second = 0
        self._this_second = 0
        self._written: OrderedDict[str, float] = OrderedDict()

    async def heard(self, uplink: Uplink, *, source: str) -> None:
        now = time.monotonic()
        if self._written.get(uplink.device_key, 0.0) > now:
            return
        if int(now) != self._second:
            self._second, self._this_second = int(now), 0
        if self._this_second >= self._per_second:
            return
        self._this_second += 1
        self._written[uplink.device_key] = now + self._every_s
        self._written.move_to_end(uplink.device_key)
        if len(self._written) > self._max_keys:
            self._written.popitem(last=False)
        payload = uplink.payload.hex() if uplink.payload is not None else ""
        async with self._pool.connection() as conn:
            await conn.execute(
                """
                INSERT INTO heard_devices AS h
                    (device_key, source, first_heard, last_heard, last_f_port, last_payload)
                VALUES (%(k)s, %(s)s, %(t)s, %(t)s, %(p)s, %(b)s)
                ON CONFLICT (device_key) DO UPDATE SET
                    source = excluded.source, last_heard = excluded.last_heard,
                    uplinks = h.uplinks + 1, last_f_port = excluded.last_f_port,
                    last_payload = excluded.last_payload
                """,
                {
                    "k": uplink.device_key[:128],
                    "s": source[:64],
                    "t": datetime.now(UTC),
                    "p": uplink.f_port,
                    "b": payload[:1024],
                },
            )


class StoredCounters:
    """The last total of each cumulative counter (pulses, Wh, people), per device.

    Held in memory; after a restart the last stored total is read back from the readings (the
    profiles store each total as a reading of its own), so the first interval after a restart
    is counted from the last uplink stored, not lost and not counted twice.
    """

    def __init__(self, pool: Pool, *, max_devices: int = 100_000) -> None:
        self._pool = pool
        self._max = max_devices
        self._totals: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._recalled: set[tuple[str, str]] = set()

    def previous(self, device_id: str, metric: str) -> float | None:
        return self._totals.get(device_id, {}).get(metric)

    def remember(self, device_id: str, metric: str, value: float) -> None:
        self._totals.setdefault(device_id, {})[metric] = value
        self._totals.move_to_end(device_id)
        if len(self._totals) > self._max:
            evicted, _ = self._totals.popitem(last=False)
            self._recalled = {k for k in self._recalled if k[0] != evicted}

    def restore(self, device_id: str, metric: str, value: float | None) -> None:
        if value is None:
            self._totals.get(device_id, {}).pop(metric, None)
        else:
            self.remember(device_id, metric, value)

    async def recall(self, device_id: str, metrics: tuple[str, ...]) -> None:
        wanted = [
            m
            for m in metrics
            if (device_id, m) not in self._recalled and self.previous(device_id, m) is None
        ]
        if not wanted:
            return
        async with self._pool.connection() as conn:
            for metric in wanted:
                cur = await conn.execute(
                    "SELECT value FROM readings WHERE device_id = %s AND metric = %s"
                    " ORDER BY ts DESC LIMIT 1",
                    (device_id, metric),
                )
                row = await cur.fetchone()
                if row is not None:
                    self.remember(device_id, metric, float(row["value"]))
                self._recalled.add((device_id, metric))


# ---- integrations ------------------------------------------------------------------------------

INTEGRATION_COLUMNS = (
    "id, kind, transport, name, mqtt_host, mqtt_port, mqtt_tls, mqtt_username, mqtt_password,"
    " ca_certificate, topic, application, profile, http_secret_hash, enabled, created_at"
)


@dataclass(frozen=True, slots=True)
class IntegrationRow:
    id: str
    kind: str
    transport: str
    name: str
    mqtt_host: str | None
    mqtt_port: int | None
    mqtt_tls: bool
    mqtt_username: str | None
    mqtt_password: str | None
    ca_certificate: str | None
    topic: str | None
    application: str | None
    profile: str | None
    http_secret_hash: bytes | None
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> IntegrationRow:
        values = dict(row)
        if values["http_secret_hash"] is not None:
            values["http_secret_hash"] = bytes(values["http_secret_hash"])
        return cls(**values)

    @property
    def connection(self) -> tuple[Any, ...]:
        """What a change of requires the MQTT client to connect again."""
        return (
            self.mqtt_host,
            self.mqtt_port,
            self.mqtt_tls,
            self.mqtt_username,
            self.mqtt_password,
            self.ca_certificate,
            self.topic,
            self.application,
            self.kind,
            self.enabled,
        )


@dataclass(slots=True)
class Status:
    """One integration's figures for the console, as saved by `db.save_status`."""

    connected: bool = False
    last_uplink_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


async def integrations(pool: Pool) -> list[IntegrationRow]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {INTEGRATION_COLUMNS} FROM integrations ORDER BY id"  # noqa: S608
        )
        return [IntegrationRow.of(r) for r in await cur.fetchall()]


async def integration(pool: Pool, integration_id: str) -> IntegrationRow | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = %s",  # noqa: S608
            (integration_id,),
        )
        row = await cur.fetchone()
    return IntegrationRow.of(row) if row else None


async def insert_integration(pool: Pool, values: dict[str, Any]) -> IntegrationRow | None:
    cols = ", ".join(values)
    params = ", ".join(f"%({c})s" for c in values)
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"INSERT INTO integrations ({cols}) VALUES ({params})"  # noqa: S608
            f" ON CONFLICT (id) DO NOTHING RETURNING {INTEGRATION_COLUMNS}",
            values,
        )
        row = await cur.fetchone()
    return IntegrationRow.of(row) if row else None


async def update_integration(
    pool: Pool, integration_id: str, values: dict[str, Any]
) -> IntegrationRow | None:
    sets = ", ".join(f"{c} = %({c})s" for c in values)
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"UPDATE integrations SET {sets}, updated_at = now() WHERE id = %(id_)s"  # noqa: S608
            f" RETURNING {INTEGRATION_COLUMNS}",
            {**values, "id_": integration_id},
        )
        row = await cur.fetchone()
    return IntegrationRow.of(row) if row else None


async def delete_integration(pool: Pool, integration_id: str) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute("DELETE FROM integrations WHERE id = %s", (integration_id,))
        return cur.rowcount > 0


async def statuses(pool: Pool) -> dict[str, dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            SELECT i.id, s.connected, s.last_uplink_at, s.last_error, s.last_error_at,
                   coalesce(sum(c.uplinks), 0)::bigint AS uplinks_last_hour,
                   coalesce(sum(c.errors), 0)::bigint AS errors_last_hour
            FROM integrations i
            LEFT JOIN integration_status s ON s.integration_id = i.id
            LEFT JOIN integration_counts c
                   ON c.integration_id = i.id AND c.hour > now() - interval '1 hour'
            GROUP BY 1, 2, 3, 4, 5
            """
        )
        return {r["id"]: dict(r) for r in await cur.fetchall()}


async def save_status(
    pool: Pool,
    *,
    states: dict[str, Status],
    counts: dict[tuple[str, datetime], tuple[int, int]],
) -> None:
    """Each integration's state and the uplinks and errors counted since the last save."""
    async with pool.connection() as conn, conn.transaction():
        for integration_id, state in states.items():
            await conn.execute(
                """
                INSERT INTO integration_status AS s
                    (integration_id, connected, last_uplink_at, last_error, last_error_at)
                SELECT %(i)s, %(c)s, %(u)s, %(e)s, %(ea)s
                WHERE EXISTS (SELECT 1 FROM integrations WHERE id = %(i)s)
                ON CONFLICT (integration_id) DO UPDATE SET
                    connected = excluded.connected,
                    last_uplink_at = greatest(s.last_uplink_at, excluded.last_uplink_at),
                    last_error = coalesce(excluded.last_error, s.last_error),
                    last_error_at = coalesce(excluded.last_error_at, s.last_error_at),
                    updated_at = now()
                """,
                {
                    "i": integration_id,
                    "c": state.connected,
                    "u": state.last_uplink_at,
                    "e": state.last_error,
                    "ea": state.last_error_at,
                },
            )
        for (integration_id, hour), (uplinks, errors) in counts.items():
            await conn.execute(
                """
                INSERT INTO integration_counts AS c (integration_id, hour, uplinks, errors)
                SELECT %(i)s, %(h)s, %(u)s, %(e)s
                WHERE EXISTS (SELECT 1 FROM integrations WHERE id = %(i)s)
                ON CONFLICT (integration_id, hour) DO UPDATE SET
                    uplinks = c.uplinks + excluded.uplinks, errors = c.errors + excluded.errors
                """,
                {"i": integration_id, "h": hour, "u": uplinks, "e": errors},
            )


async def ingest_token_hashes(pool: Pool, device_id: str) -> list[bytes]:
    """The hashes of a device's live HTTP push tokens (services/api issues them)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT token_hash FROM ingest_tokens WHERE device_id = %s AND revoked_at IS NULL",
            (device_id,),
        )
        return [bytes(r["token_hash"]) for r in await cur.fetchall()]


async def heard_devices(pool: Pool, *, limit: int) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            SELECT h.device_key, h.source, h.first_heard, h.last_heard, h.uplinks,
                   h.last_f_port, h.last_payload
            FROM heard_devices h
            WHERE NOT EXISTS (
                SELECT 1 FROM devices d
                WHERE (d.dev_eui = h.device_key OR d.external_id = h.device_key)
                  AND d.deleted_at IS NULL)
            ORDER BY h.last_heard DESC LIMIT %s
            """,
            (limit,),
        )
        return [dict(r) for r in await cur.fetchall()]


# ---- codecs and profiles -----------------------------------------------------------------------


async def codecs(pool: Pool) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name, version, sha256, source, created_at, jsonb_array_length(examples)"
            " AS examples FROM codecs ORDER BY name, version DESC"
        )
        return [dict(r) for r in await cur.fetchall()]


async def codec_examples(pool: Pool, name: str) -> list[dict[str, Any]] | None:
    """The newest version's examples, or None if there is no such codec."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT examples FROM codecs WHERE name = %s ORDER BY version DESC LIMIT 1", (name,)
        )
        row = await cur.fetchone()
    return list(row["examples"]) if row else None


async def add_codec(
    pool: Pool, *, name: str, script: str, examples: list[dict[str, Any]], source: str
) -> dict[str, Any]:
    """A new version, unless the newest one already has this very script and examples."""
    digest = hashlib.sha256(script.encode()).hexdigest()
    async with pool.connection() as conn, conn.transaction():
        # Two uploads of one codec at once must not both take the same version number.
        await conn.execute("SELECT pg_advisory_xact_lock(7311, hashtext(%s))", (name,))
        cur = await conn.execute(
            "SELECT name, version, sha256, source, created_at, examples FROM codecs"
            " WHERE name = %s ORDER BY version DESC LIMIT 1",
            (name,),
        )
        last = await cur.fetchone()
        if last is not None and last["sha256"] == digest and last["examples"] == examples:
            return {**last, "examples": len(examples), "created": False}
        cur = await conn.execute(
            "INSERT INTO codecs (name, version, script, sha256, examples, source)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " RETURNING name, version, sha256, source, created_at",
            (name, (last["version"] + 1) if last else 1, script, digest, Jsonb(examples), source),
        )
        row = await cur.fetchone()
    assert row is not None
    return {**row, "examples": len(examples), "created": True}


async def install_shipped_profiles(pool: Pool, *, repository: Path | None = None) -> None:
    """The profiles TownPulse ships, up to date in the database (a town's own edits win), and,
    with a local Device Repository copy, the codecs they name that are not installed yet."""
    definitions = shipped_profiles()
    profiles = [parse_profile(d) for d in definitions]
    for profile, definition in zip(profiles, definitions, strict=True):
        await save_profile(pool, profile, definition, shipped=True)
    if repository is None:
        return
    wanted = {p.codec for p in profiles if p.codec}
    missing = [name for name in sorted(wanted) if await codec_examples(pool, name) is None]
    # A town's own upload, or an earlier import, is never replaced.
    for found in await asyncio.to_thread(_repository_codecs, repository, missing):
        await add_codec(
            pool,
            name=found.name,
            script=found.script,
            examples=[e.to_doc() for e in found.examples],
            source=f"repository:{found.path}",
        )
        log.info("codec installed from the Device Repository", extra={"codec": found.name})


def _repository_codecs(root: Path, names: list[str]) -> list[RepositoryCodec]:
    if not root.is_dir():
        return []
    available = {repository_codec_name(p): p for p in list_repository_codecs(root)}
    return [load_repository_codec(root, available[n]) for n in names if n in available]


async def profiles(pool: Pool) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name, domain, codec, definition, shipped, updated_at FROM device_profiles"
            " ORDER BY name"
        )
        return [dict(r) for r in await cur.fetchall()]


async def profile_row(pool: Pool, name: str) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name, domain, codec, definition, shipped, updated_at FROM device_profiles"
            " WHERE name = %s",
            (name,),
        )
        row = await cur.fetchone()
    return dict(row) if row else None


async def save_profile(
    pool: Pool, profile: Profile, definition: dict[str, Any], *, shipped: bool
) -> bool:
    """Insert or replace; True if it was new. A shipped profile never replaces a town's own."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            INSERT INTO device_profiles AS p (name, domain, codec, definition, shipped)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET
                domain = excluded.domain, codec = excluded.codec,
                definition = excluded.definition, shipped = excluded.shipped, updated_at = now()
            WHERE p.shipped OR NOT excluded.shipped
            RETURNING (xmax = 0) AS inserted
            """,
            (profile.name, profile.domain.value, profile.codec, Jsonb(definition), shipped),
        )
        row = await cur.fetchone()
    return bool(row and row["inserted"])


async def delete_profile(pool: Pool, name: str) -> tuple[bool, int]:
    """(deleted, devices using it): a profile some device still uses is kept."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT count(*) AS n FROM devices WHERE profile = %s AND deleted_at IS NULL"
            " UNION ALL SELECT count(*) FROM integrations WHERE profile = %s",
            (name, name),
        )
        users = sum(int(r["n"]) for r in await cur.fetchall())
        if users:
            return False, users
        cur = await conn.execute("DELETE FROM device_profiles WHERE name = %s", (name,))
        return cur.rowcount > 0, 0


async def delete_codec(pool: Pool, name: str) -> tuple[bool, list[str]]:
    """(deleted, profiles naming it): every version, unless a profile still names the codec."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT name FROM device_profiles WHERE codec = %s ORDER BY name", (name,)
        )
        users = [r["name"] for r in await cur.fetchall()]
        if users:
            return False, users
        cur = await conn.execute("DELETE FROM codecs WHERE name = %s", (name,))
        return cur.rowcount > 0, []
