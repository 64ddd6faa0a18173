"""PostgreSQL plumbing: connection pools, migrations, and the storage backend in use."""

from __future__ import annotations

from pathlib import Path

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from shared.townzone import (
    DEFAULT_ZONE,
    TownZone,
    TownZoneError,
    check_timezone,
    ensure_rollup_zone,
)

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


def migrate(
    database_url: SecretStr | str, *, revision: str = "heads", timezone: str | None = None
) -> None:
    """Apply migrations up to `revision` (idempotent).

    "heads": each feature (alerts, the online-learning runtime) has its own branch from the
    initial schema, so they can be written independently; all of them are applied.

    `timezone`: the town's (default: `TOWNPULSE_TIMEZONE`, as the services read it). The daily
    rollup's days follow it while the database holds no reading; a database whose rollup has
    another zone's days and readings is refused (shared/townzone.py).
    """
    from alembic import command
    from alembic.config import Config

    url = database_url.get_secret_value() if isinstance(database_url, SecretStr) else database_url
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on a '%' in a URL-encoded password.
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    zone = timezone if timezone is not None else town_zone()
    # Read by migration 0013, and by the step below on a database migrated before.
    cfg.attributes["timezone"] = check_timezone(zone)
    command.upgrade(cfg, revision)
    import psycopg

    with psycopg.connect(url) as conn:
        # Only once migration 0013 has recorded a zone (not when migrating to an older one).
        if conn.execute("SELECT 1 FROM storage_info WHERE key = 'timezone'").fetchone():
            conn.execute("SELECT pg_advisory_xact_lock(7310001)")
            ensure_rollup_zone(conn, zone)


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
