"""Least privilege: one database role per service, none of them owning a table.

Until now every service connected as `townpulse`, which owns the tables: it could disable the
audit log's append-only trigger, read every secret and write the model checkpoints the domain
services unpickle. From here on:

- `townpulse` stays the owner of the schema. Only migrations, `townpulse bootstrap` and the
  operator's own tools (tests, benchmarks) connect as it. It needs CREATEROLE to run this
  migration (the local stack grants it; in docker-compose it is the cluster's superuser).
- One LOGIN role per service (`townpulse_gateway`, `townpulse_storage`, `townpulse_api`,
  `townpulse_energy`, `townpulse_waste`, `townpulse_traffic`, `townpulse_alerts`) with the
  grants its SQL needs and nothing else; the matrix in tests/shared/db_privileges.json lists
  them all, so a new grant is reviewed. Passwords are set by the bootstrap (the roles are
  created without one, so they cannot log in until then).
- `townpulse_maintenance`: retention (the storage service's job, on its own connection) and
  the pseudonymisation of the audit log at erasure. It is the only role the audit log's
  trigger lets UPDATE or DELETE; TRUNCATE stays refused to every role.
- What needs ownership (creating and dropping partitions of `readings`, TimescaleDB retention
  policies, verifying an API key against its hash) goes through SECURITY DEFINER functions
  that do exactly that one thing, executable only by the role that needs it.
- `runtime_state.state_mac`: each checkpoint's HMAC (shared/runtime/checkpoints.py); the key is
  outside the database.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
# The audit log (0005b_access) and the erasure tombstones (0005a_erasures) are on branches
# of their own, which a fresh database may apply after 0008: they must exist first.
depends_on = ("0005a_erasures", "0005b_access")

OWNER = "townpulse"
MAINTENANCE = "townpulse_maintenance"
SERVICES = ("gateway", "storage", "api", "energy", "waste", "traffic", "alerts")
ROLES = (*(f"townpulse_{s}" for s in SERVICES), MAINTENANCE)

# What a service reads and writes, table by table: S(ELECT) I(NSERT) U(PDATE) D(ELETE).
# Derived from each service's SQL (adapters, routes, shared/runtime, shared/erasure...).
DOMAIN_TABLES = {
    "energy": ("energy_scores", "energy_episodes", "energy_forecasts"),
    "waste": ("waste_levels", "waste_collections", "waste_bins", "waste_episodes"),
    "traffic": ("traffic_flows", "traffic_forecasts", "traffic_episodes"),
}
ALERT_TABLES = (
    "alerts",
    "alert_timeline",
    "alert_processed_events",
    "alert_device_activity",
    "alert_rules",
    "webhook_subscriptions",
    "webhook_outbox",
    "webhook_attempts",
)
# The erasure (services/api, shared/erasure.py) deletes every row naming the device.
ERASED_BY_API = (
    "readings",
    "energy_scores",
    "energy_episodes",
    "energy_forecasts",
    "waste_levels",
    "waste_collections",
    "waste_bins",
    "waste_episodes",
    "traffic_flows",
    "traffic_forecasts",
    "traffic_episodes",
    "alert_device_activity",
    "alert_rules",
    "device_uplinks",
    "ingest_tokens",
    "alerts",
    "webhook_outbox",
    "alert_processed_events",
    "runtime_outbox",
    "runtime_state",
    "deadletters",
    "devices",
)
# What the API shows (console, open data, device pages): read-only.
READ_BY_API = (
    "devices",
    "readings",
    "readings_hourly",
    "readings_daily",
    "deadletters",
    "device_profiles",
    "device_uplinks",
    "codecs",
    "heard_devices",
    "device_erasures",
    "energy_scores",
    "energy_episodes",
    "energy_forecasts",
    "waste_levels",
    "waste_collections",
    "waste_bins",
    "waste_episodes",
    "traffic_flows",
    "traffic_forecasts",
    "traffic_episodes",
    "alerts",
    "alert_rules",
    "alert_device_activity",
    "alert_processed_events",
    "webhook_outbox",
    "ingest_tokens",
    "open_data_publications",
    "api_keys",
    "audit_log",
)


def _grants() -> list[tuple[str, str, str]]:
    """(privileges, table, role) for every service role."""
    g: list[tuple[str, str, str]] = []

    def add(role: str, privileges: str, *tables: str) -> None:
        g.extend((privileges, t, f"townpulse_{role}") for t in tables)

    for svc in SERVICES:
        # Every service reads which backend it runs on and records its own audit entries.
        add(svc, "SELECT", "storage_info")
        add(svc, "INSERT", "audit_log")
    add("gateway", "SELECT", "devices", "readings", "device_uplinks")
    add(
        "gateway",
        "SELECT, INSERT, UPDATE, DELETE",
        "codecs",
        "device_profiles",
        "integrations",
        "integration_status",
        "integration_counts",
        "heard_devices",
    )
    add("gateway", "SELECT, UPDATE", "ingest_tokens")
    add("storage", "SELECT", "devices", "device_erasures")
    add("storage", "SELECT, INSERT, UPDATE", "readings", "device_uplinks", "stream_offsets")
    add("storage", "INSERT", "deadletters")
    add("alerts", "SELECT", "devices", "device_erasures")
    add("alerts", "SELECT, INSERT, UPDATE, DELETE", *ALERT_TABLES)
    add("alerts", "SELECT, INSERT, UPDATE", "stream_offsets")
    add("alerts", "INSERT", "deadletters")
    for domain, tables in DOMAIN_TABLES.items():
        add(domain, "SELECT", "devices", "device_erasures", "readings")
        add(domain, "SELECT, INSERT, UPDATE, DELETE", *tables, "runtime_state", "runtime_outbox")
        add(domain, "SELECT, INSERT, UPDATE", "stream_offsets")
        add(domain, "INSERT", "deadletters")
    add("api", "SELECT", *READ_BY_API)
    add("api", "DELETE", *ERASED_BY_API)
    add("api", "INSERT, UPDATE, DELETE", "devices", "open_data_publications", "ingest_tokens")
    add("api", "INSERT, UPDATE", "api_keys", "device_erasures")
    return g


def _rollup_grants(backend: str) -> list[tuple[str, str, str]]:
    """The hourly/daily rollups: tables the storage service maintains on plain PostgreSQL,
    continuous aggregates on TimescaleDB (the erasure writes their materialisation)."""
    g = [
        ("SELECT", t, f"townpulse_{s}")
        for t in ("readings_hourly", "readings_daily")
        for s in ("storage", "energy", "waste", "traffic")
    ]
    if backend == "postgres":
        g += [
            ("INSERT, UPDATE", t, "townpulse_storage")
            for t in ("readings_hourly", "readings_daily")
        ]
        g += [("UPDATE, DELETE", t, "townpulse_api") for t in ("readings_hourly", "readings_daily")]
    return g


# Retention (shared/retention.py): SELECT and DELETE on every table it prunes.
RETAINED = (
    "readings",
    "device_uplinks",
    "readings_hourly",
    "readings_daily",
    "energy_scores",
    "waste_levels",
    "traffic_flows",
    "energy_forecasts",
    "traffic_forecasts",
    "energy_episodes",
    "waste_episodes",
    "traffic_episodes",
    "waste_collections",
    "alerts",
    "deadletters",
    "heard_devices",
    "webhook_outbox",
    "runtime_outbox",
    "alert_processed_events",
    "device_erasures",
    "runtime_state",
    "waste_bins",
    "alert_device_activity",
)

POSTGRES_FUNCTIONS = """
-- Partitions of `readings` (plain PostgreSQL) are created by the writer as they are needed:
-- as the owner, since only the owner of a table may attach a partition to it.
ALTER FUNCTION townpulse_ensure_partition(timestamptz) SECURITY DEFINER SET search_path = public;
REVOKE ALL ON FUNCTION townpulse_ensure_partition(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION townpulse_ensure_partition(timestamptz) TO townpulse_storage;
"""

FUNCTIONS = f"""
-- Retention drops whole monthly partitions; nothing but a partition of readings.
CREATE OR REPLACE FUNCTION townpulse_drop_readings_partition(part text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'readings' AND c.relname = part
    ) THEN
        RAISE EXCEPTION '% is not a partition of readings', part;
    END IF;
    EXECUTE format('DROP TABLE %I', part);
END $$;
REVOKE ALL ON FUNCTION townpulse_drop_readings_partition(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION townpulse_drop_readings_partition(text) TO {MAINTENANCE};

-- An API key's role if the presented key's hash matches (NULL otherwise): every service
-- checks keys, only the API reads (and writes) the table of hashes.
CREATE OR REPLACE FUNCTION townpulse_api_key_role(key_id text, presented bytea) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT role FROM api_keys
    WHERE id = key_id AND revoked_at IS NULL AND key_hash = presented
$$;
REVOKE ALL ON FUNCTION townpulse_api_key_role(text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION townpulse_api_key_role(text, bytea)
    TO {", ".join(f"townpulse_{s}" for s in SERVICES)};

-- The audit log stays append-only, except for the maintenance role (pseudonymisation at
-- erasure). TRUNCATE is refused to everyone.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND current_user = '{MAINTENANCE}' THEN
        RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- Erasure: a device id replaced by its keyed pseudonym (computed by the caller, whose key the
-- database does not hold) wherever it stands as a whole id in an entry; the entry is kept.
-- Runs as the maintenance role, whatever role calls it.
CREATE OR REPLACE FUNCTION townpulse_pseudonymise_audit(plain text, pseudonym text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    -- A whole id: not inside a longer one (device ids are [A-Za-z0-9_.-]; a dot that ends a
    -- sentence or a file name is not part of it).
    pattern text := '(?<![A-Za-z0-9_.-])' || replace(plain, '.', '\\.')
                    || '(?![A-Za-z0-9_-]|\\.[A-Za-z0-9_-])';
    n bigint;
BEGIN
    IF plain !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}$' THEN
        RAISE EXCEPTION 'not a device id: %', plain;
    END IF;
    UPDATE audit_log SET
        key_id = regexp_replace(key_id, pattern, pseudonym, 'g'),
        action = regexp_replace(action, pattern, pseudonym, 'g'),
        target = regexp_replace(target, pattern, pseudonym, 'g'),
        detail = regexp_replace(detail::text, pattern, pseudonym, 'g')::jsonb
    WHERE position(plain IN concat_ws(' ', key_id, action, target, detail::text)) > 0;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION townpulse_pseudonymise_audit(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION townpulse_pseudonymise_audit(text, text) TO townpulse_api;
-- Its privileges go with it to its new owner. Handing a function to another role needs
-- membership in it and its CREATE on the schema: both only for this statement.
GRANT {MAINTENANCE} TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO {MAINTENANCE};
ALTER FUNCTION townpulse_pseudonymise_audit(text, text) OWNER TO {MAINTENANCE};
REVOKE CREATE ON SCHEMA public FROM {MAINTENANCE};
REVOKE {MAINTENANCE} FROM CURRENT_USER;
"""

TIMESCALE_FUNCTIONS = f"""
-- Retention policies on hypertables and continuous aggregates (owner only in TimescaleDB).
CREATE OR REPLACE FUNCTION townpulse_set_retention_policy(rel regclass, days integer)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                   WHERE format('%I.%I', hypertable_schema, hypertable_name)::regclass = rel)
       AND NOT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates
                       WHERE format('%I.%I', view_schema, view_name)::regclass = rel) THEN
        RAISE EXCEPTION '% is neither a hypertable nor a continuous aggregate', rel;
    END IF;
    PERFORM remove_retention_policy(rel, if_exists => true);
    IF days > 0 THEN
        PERFORM add_retention_policy(rel, drop_after => make_interval(days => days));
    END IF;
END $$;
REVOKE ALL ON FUNCTION townpulse_set_retention_policy(regclass, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION townpulse_set_retention_policy(regclass, integer) TO {MAINTENANCE};
"""


def upgrade() -> None:
    bind = op.get_bind()
    raw = bind.connection.driver_connection
    assert raw is not None
    backend = (
        bind.exec_driver_sql("SELECT value FROM storage_info WHERE key = 'backend'").scalar()
        or "postgres"
    )
    database = '"{}"'.format(bind.exec_driver_sql("SELECT current_database()").scalar())
    statements: list[str] = []
    for role in ROLES:
        # Roles belong to the cluster: another database of the same server may have made them.
        statements.append(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN"
            f" CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
            " NOREPLICATION NOBYPASSRLS; END IF; END $$;"
        )
        statements.append(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role};")
        statements.append(f"GRANT USAGE ON SCHEMA public TO {role};")
        statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};")
        # Tables and sequences created later (by `townpulse`, in migrations) grant nothing but
        # their sequences: a new table's privileges are decided in its migration and show up
        # in the reviewed matrix (tests/shared/test_db_privileges.py).
        statements.append(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public"
            f" GRANT USAGE, SELECT ON SEQUENCES TO {role};"
        )
    # The retention report (services/api) reads which devices still have model state, never
    # the state itself.
    statements.append("GRANT SELECT (device_id, group_id) ON runtime_state TO townpulse_api;")
    statements.append("GRANT SELECT (key, created_at) ON runtime_outbox TO townpulse_api;")
    # Dead letters are written ON CONFLICT DO NOTHING: the conflict's columns must be readable.
    statements.append(
        "GRANT SELECT (kafka_topic, kafka_partition, kafka_offset) ON deadletters TO "
        + ", ".join(f"townpulse_{s}" for s in ("storage", "alerts", *DOMAIN_TABLES))
        + ";"
    )
    for privileges, table, role in _grants() + _rollup_grants(backend):
        statements.append(f"GRANT {privileges} ON {table} TO {role};")
    for table in RETAINED:
        statements.append(f"GRANT SELECT, DELETE ON {table} TO {MAINTENANCE};")
    statements.append(f"GRANT SELECT ON devices, storage_info TO {MAINTENANCE};")
    statements.append(f"GRANT SELECT, UPDATE, DELETE ON audit_log TO {MAINTENANCE};")
    statements.append("ALTER TABLE runtime_state ADD COLUMN state_mac bytea;")
    raw.execute("\n".join(statements))
    raw.execute(FUNCTIONS)
    if backend == "postgres":
        raw.execute(POSTGRES_FUNCTIONS)
    if backend == "timescaledb":
        raw.execute(TIMESCALE_FUNCTIONS)
        # The erasure rewrites the rollups where their rows live; retention reads them there.
        rows = raw.execute(
            "SELECT view_name, materialization_hypertable_schema,"
            " materialization_hypertable_name FROM timescaledb_information.continuous_aggregates"
        ).fetchall()
        schemas = {r[1] for r in rows}
        for schema in schemas:
            raw.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO townpulse_api, {MAINTENANCE}')
        for _, schema, table in rows:
            raw.execute(f'GRANT SELECT, UPDATE, DELETE ON "{schema}"."{table}" TO townpulse_api')
            raw.execute(f'GRANT SELECT ON "{schema}"."{table}" TO {MAINTENANCE}')


def downgrade() -> None:
    bind = op.get_bind()
    raw = bind.connection.driver_connection
    assert raw is not None
    raw.execute(
        """
        DROP FUNCTION IF EXISTS townpulse_pseudonymise_audit(text, text);
        DROP FUNCTION IF EXISTS townpulse_api_key_role(text, bytea);
        DROP FUNCTION IF EXISTS townpulse_drop_readings_partition(text);
        DROP FUNCTION IF EXISTS townpulse_set_retention_policy(regclass, integer);
        CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        ALTER TABLE runtime_state DROP COLUMN state_mac;
        """
    )
    if raw.execute("SELECT to_regprocedure('townpulse_ensure_partition(timestamptz)')").fetchone()[
        0
    ]:
        raw.execute(
            "ALTER FUNCTION townpulse_ensure_partition(timestamptz) SECURITY INVOKER;"
            " GRANT EXECUTE ON FUNCTION townpulse_ensure_partition(timestamptz) TO PUBLIC;"
        )
    database = raw.execute("SELECT current_database()").fetchone()[0]
    timescale = raw.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    materialized = (
        raw.execute(
            "SELECT materialization_hypertable_schema, materialization_hypertable_name"
            " FROM timescaledb_information.continuous_aggregates"
        ).fetchall()
        if timescale
        else []
    )
    for role in ROLES:
        # Its grants here go; the role itself stays while another database still uses it.
        raw.execute(
            f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role};"
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role};"
            f"REVOKE ALL ON SCHEMA public FROM {role};"
        )
        for schema, table in materialized:
            raw.execute(
                f'REVOKE ALL ON "{schema}"."{table}" FROM {role};'
                f'REVOKE ALL ON SCHEMA "{schema}" FROM {role};'
            )
        raw.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public"
            f" REVOKE ALL ON SEQUENCES FROM {role};"
            f'REVOKE ALL ON DATABASE "{database}" FROM {role};'
        )
        raw.execute(
            f"DO $$ BEGIN DROP ROLE IF EXISTS {role}; "
            "EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$"
        )
