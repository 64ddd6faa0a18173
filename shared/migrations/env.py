"""Alembic environment: plain SQL migrations, no ORM models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by shared.db.migrate"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Two processes migrating at once (two `make up`s, or a service and the CLI) must not
        # interleave: a session lock, released when the connection closes.
        connection.exec_driver_sql("SELECT pg_advisory_lock(7310001)")
        connection.commit()
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run them against the database")
run_migrations_online()
