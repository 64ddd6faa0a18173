"""The platform's own footprint: samples of each component's CPU time and memory, and of the
machine's RAPL energy counters where it exposes them.

- `platform_footprint`: one row per component per sample (townpulse/watch/footprint.py, every
  `TOWNPULSE_FOOTPRINT_INTERVAL_S`). A component's `cpu_s` is a counter (the CPU seconds of its
  processes so far, with those of the children they reaped), valid while `started_at` (when its
  main process started) stays the same; a RAPL domain's `energy_uj` is the machine's own counter,
  which wraps at `energy_range_uj`. shared/footprint.py turns consecutive samples into usage.
- `townpulse_watch`: the watch's own role (it samples), allowed to add samples and nothing else;
  the API reads them for the monthly report, retention prunes them (class `footprint`).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

WATCH = "townpulse_watch"
MAINTENANCE = "townpulse_maintenance"

TABLE = """
CREATE TABLE platform_footprint (
    ts              timestamptz NOT NULL,
    component       text NOT NULL CHECK (component ~ '^[a-z0-9][a-z0-9:._-]{0,63}$'),
    source          text NOT NULL CHECK (source IN ('proc', 'cgroup', 'rapl')),
    cpu_s           double precision CHECK (cpu_s >= 0),
    rss_bytes       bigint CHECK (rss_bytes >= 0),
    processes       integer CHECK (processes >= 0),
    started_at      timestamptz,
    energy_uj       bigint CHECK (energy_uj >= 0),
    energy_range_uj bigint CHECK (energy_range_uj > 0),
    PRIMARY KEY (component, ts)
);
"""

# Like the other per-sample tables (0005a): weekly chunks, dropped whole by retention.
TIMESCALE = "SELECT create_hypertable('platform_footprint', by_range('ts', interval '7 days'));"
POSTGRES = "CREATE INDEX platform_footprint_ts ON platform_footprint (ts);"


def upgrade() -> None:
    bind = op.get_bind()
    raw = bind.connection.driver_connection
    assert raw is not None
    backend = (
        bind.exec_driver_sql("SELECT value FROM storage_info WHERE key = 'backend'").scalar()
        or "postgres"
    )
    database = '"{}"'.format(bind.exec_driver_sql("SELECT current_database()").scalar())
    raw.execute(TABLE)
    raw.execute(TIMESCALE if backend == "timescaledb" else POSTGRES)
    raw.execute(
        # As 0009 creates the services' roles: the bootstrap gives it its password.
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WATCH}') THEN"
        f" CREATE ROLE {WATCH} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
        " NOREPLICATION NOBYPASSRLS; END IF; END $$;"
        f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {WATCH};"
        f"GRANT USAGE ON SCHEMA public TO {WATCH};"
        # The watch adds samples; it reads nothing back (its previous sample is in memory).
        f"GRANT INSERT ON platform_footprint TO {WATCH};"
        "GRANT SELECT ON platform_footprint TO townpulse_api;"
        f"GRANT SELECT, DELETE ON platform_footprint TO {MAINTENANCE};"
    )


def downgrade() -> None:
    bind = op.get_bind()
    database = '"{}"'.format(bind.exec_driver_sql("SELECT current_database()").scalar())
    bind.exec_driver_sql("DROP TABLE platform_footprint")
    # The role belongs to the cluster (other databases may use it): only this database's grants.
    bind.exec_driver_sql(
        f"REVOKE ALL ON SCHEMA public FROM {WATCH}; REVOKE ALL ON DATABASE {database} FROM {WATCH}"
    )
