"""The lighting service's tables and its role's grants: the first revision of the lighting
domain's own Alembic branch (its manifest's `migrations`, docs/domains.md).

`lighting_readings` is a hypertable on TimescaleDB (like the other domains' per-reading tables,
0005a_retention), a plain table with an index on `ts` on PostgreSQL. Its role
`townpulse_lighting` gets what the other domain roles got in 0009_roles, 0012_register and
0014_alert_feedback, and nothing else (tests/shared/db_privileges.json).

Written as core revision 0016, which also rewrote the `domain` CHECK constraints to admit
`lighting`; moved here keeping its id, so that a database at 0016 is at this branch's head. The
domains a device may belong to are now rows of the `domains` table (core 0017), which the
migrate step fills from the registered manifests: no domain's migration lists the domains.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from alembic import op

revision = "0016"
# The core schema it builds on (devices, the roles of 0009, register_algorithms, alert_feedback).
down_revision = "0015"
branch_labels = ("lighting",)
depends_on = None

ROLE = "townpulse_lighting"
TABLES = ("lighting_readings", "lighting_episodes", "lighting_circuits")

UP = """
CREATE TABLE lighting_readings (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    is_on        boolean NOT NULL,
    power_w      double precision,
    energy_kwh   double precision,
    voltage_v    double precision,
    dimming_pct  double precision,
    expected_w   double precision,
    baseline_kwh double precision,
    kind         text,
    PRIMARY KEY (device_id, ts)
);

CREATE TABLE lighting_circuits (
    device_id    text PRIMARY KEY,
    ts           timestamptz NOT NULL,
    is_on        boolean NOT NULL,
    dimming_pct  double precision,
    power_w      double precision,
    learnt_w     jsonb NOT NULL DEFAULT '{}'::jsonb,
    channels     jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE lighting_episodes (
    device_id   text NOT NULL,
    kind        text NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    severity    text NOT NULL,
    peak        double precision NOT NULL,
    readings    integer NOT NULL,
    explanation jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (device_id, kind, started_at)
);
CREATE INDEX lighting_episodes_started ON lighting_episodes (started_at);
"""

TIMESCALE = (
    "SELECT create_hypertable('lighting_readings', by_range('ts', interval '7 days'),"
    " migrate_data => true);"
)
POSTGRES = "CREATE INDEX lighting_readings_ts ON lighting_readings (ts);"


def _grants(database: str) -> str:
    tables = ", ".join(TABLES)
    return f"""
DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
 CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION
 NOBYPASSRLS; END IF; END $$;
GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {ROLE};
GRANT USAGE ON SCHEMA public TO {ROLE};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE};
ALTER DEFAULT PRIVILEGES FOR ROLE townpulse IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO {ROLE};
GRANT SELECT ON storage_info, devices, device_erasures, readings, readings_hourly,
    readings_daily, alert_feedback TO {ROLE};
GRANT INSERT ON audit_log, deadletters TO {ROLE};
GRANT SELECT (kafka_topic, kafka_partition, kafka_offset) ON deadletters TO {ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON {tables}, runtime_state, runtime_outbox,
    register_algorithms TO {ROLE};
GRANT SELECT, INSERT, UPDATE ON stream_offsets TO {ROLE};
GRANT EXECUTE ON FUNCTION townpulse_api_key_role(text, bytea) TO {ROLE};
-- The API shows them and erases a device's rows; retention prunes them.
GRANT SELECT, DELETE ON {tables} TO townpulse_api;
GRANT SELECT, DELETE ON {tables} TO townpulse_maintenance;
"""


def upgrade() -> None:
    bind = op.get_bind()
    backend = bind.exec_driver_sql("SELECT value FROM storage_info WHERE key = 'backend'").scalar()
    database = '"{}"'.format(bind.exec_driver_sql("SELECT current_database()").scalar())
    raw = bind.connection.driver_connection
    assert raw is not None
    raw.execute(UP)
    raw.execute(TIMESCALE if backend == "timescaledb" else POSTGRES)
    raw.execute(_grants(database))


def downgrade() -> None:
    bind = op.get_bind()
    raw = bind.connection.driver_connection
    assert raw is not None
    raw.execute(
        "DELETE FROM alert_rules WHERE domain = 'lighting';"
        " DELETE FROM device_profiles WHERE domain = 'lighting';"
        " DELETE FROM devices WHERE domain = 'lighting';"
    )
    raw.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")
    database = bind.exec_driver_sql("SELECT current_database()").scalar()
    # The role stays while another database of the cluster may use it; its grants here go.
    raw.execute(
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ROLE};"
        f" REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {ROLE};"
        f" REVOKE ALL ON FUNCTION townpulse_api_key_role(text, bytea) FROM {ROLE};"
        f" ALTER DEFAULT PRIVILEGES FOR ROLE townpulse IN SCHEMA public"
        f" REVOKE ALL ON SEQUENCES FROM {ROLE};"
        f" REVOKE ALL ON SCHEMA public FROM {ROLE};"
        f' REVOKE ALL ON DATABASE "{database}" FROM {ROLE};'
    )
