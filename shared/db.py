"""PostgreSQL plumbing: connection pools, migrations, and the storage backend in use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from shared import domains
from shared.townzone import (
    DEFAULT_ZONE,
    TownZone,
    TownZoneError,
    check_timezone,
    ensure_rollup_zone,
)

if TYPE_CHECKING:
    import psycopg
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Every pool hands out connections whose rows are dicts (column name -> value).
Pool = AsyncConnectionPool[AsyncConnection[DictRow]]


def sqlalchemy_url(database_url: str) -> str:
    """Alembic runs on SQLAlchemy; point it at the psycopg 3 driver the services use."""
    # Imported here, like Alembic below: only migrations need them, and they cost every
    # service process about 20 MB of memory.
    from sqlalchemy.engine import make_url

    return (
        make_url(database_url)
        .set(drivername="postgresql+psycopg")
        .render_as_string(hide_password=False)
    )


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration for this database: the platform's migrations
    (shared/migrations/versions) and each registered domain's own branch (its manifest's
    `migrations` folder, shared.domains.migration_folders)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # os.pathsep between the folders: a path may hold a space, not a colon.
    cfg.set_main_option("path_separator", "os")
    folders = (MIGRATIONS_DIR / "versions", *domains.migration_folders())
    cfg.set_main_option("version_locations", os.pathsep.join(str(f) for f in folders))
    # ConfigParser interpolation would choke on a '%' in a URL-encoded password.
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return cfg


def sync_domains(conn: psycopg.Connection[Any]) -> None:
    """Add a row to `domains` (migration 0017) for each registered domain that has none: a
    device, a profile or an alert rule may then name it (the table's foreign keys). A domain
    no longer registered keeps its row (rows may still name it); the API refuses new devices
    of it all the same (its schemas take the registered domains only)."""
    conn.execute(
        "INSERT INTO domains (name) SELECT unnest(%s::text[]) ON CONFLICT (name) DO NOTHING",
        (list(domains.names()),),
    )


def migrate(
    database_url: SecretStr | str, *, revision: str = "heads", timezone: str | None = None
) -> None:
    """Apply migrations up to `revision` (idempotent), then record the registered domains.

    "heads": each feature (alerts, the online-learning runtime) has its own branch from the
    initial schema, so they can be written independently, and so has a domain that declares
    its migrations in its manifest (docs/domains.md); all of them are applied.

    `timezone`: the town's (default: `TOWNPULSE_TIMEZONE`, as the services read it). The daily
    rollup's days follow it while the database holds no reading; a database whose rollup has
    another zone's days and readings is refused (shared/townzone.py).
    """
    from alembic import command

    url = database_url.get_secret_value() if isinstance(database_url, SecretStr) else database_url
    cfg = alembic_config(url)
    zone = timezone if timezone is not None else town_zone()
    # Read by migration 0013, and by the step below on a database migrated before.
    cfg.attributes["timezone"] = check_timezone(zone)
    command.upgrade(cfg, revision)
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(7310001)")
        # Only once migration 0013 has recorded a zone (not when migrating to an older one).
        if conn.execute("SELECT 1 FROM storage_info WHERE key = 'timezone'").fetchone():
            ensure_rollup_zone(conn, zone)
        # Likewise once 0017 has made the table.
        if conn.execute("SELECT to_regclass('public.domains')").fetchone() != (None,):
            sync_domains(conn)


def town_zone() -> str:
    """`TOWNPULSE_TIMEZONE` as every service reads it (validated), outside any service."""
    from pydantic import ValidationError
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class TownZoneSetting(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix="TOWNPULSE_", extra="ignore", title="TOWNPULSE_TIMEZONE"
        )
        timezone: TownZone = DEFAULT_ZONE

    try:
        return TownZoneSetting().timezone
    except ValidationError as exc:
        raise TownZoneError(
            "TOWNPULSE_TIMEZONE: " + "; ".join(str(e["msg"]) for e in exc.errors())
        ) from None


# No statement of ours runs for long (API queries are bounded, batches are about a thousand
# rows): one running past this is a runaway query or a lock pile-up, and is cancelled rather
# than left holding a connection the other requests need.
STATEMENT_TIMEOUT_MS = 30_000


def create_pool(
    database_url: SecretStr,
    *,
    min_size: int = 1,
    max_size: int = 4,
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
) -> Pool:
    """A pool that is opened by the caller (in a FastAPI lifespan), never at import time."""
    return AsyncConnectionPool(
        database_url.get_secret_value(),
        connection_class=AsyncConnection[DictRow],
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={
            "row_factory": dict_row,
            "autocommit": False,
            "options": f"-c statement_timeout={statement_timeout_ms}",
        },
        # Fail readiness quickly instead of hanging a request when the database is down.
        timeout=10,
        # After a database restart every pooled connection is dead: test one before handing it
        # out (a round trip on localhost) rather than fail the request or batch that gets it.
        check=AsyncConnectionPool.check_connection,
    )


async def storage_backend(pool: Pool) -> str:
    """'timescaledb' or 'postgres', as recorded by the first migration."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT value FROM storage_info WHERE key = 'backend'")
        row = await cur.fetchone()
    return str(row["value"]) if row else "postgres"
