"""Devices, API keys, readings with hourly/daily rollups, dead letters.

With the `timescaledb` extension available: readings is a hypertable, the rollups are continuous
aggregates, with compression and retention policies. Without it: readings is partitioned by month
with native range partitioning (partitions created on demand by `townpulse_ensure_partition`),
and the rollups are plain tables that the storage service maintains in the same transaction as
the rows it inserts. Both expose the same tables and columns, so queries do not care.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

COMMON = """
CREATE TABLE storage_info (key text PRIMARY KEY, value text NOT NULL);

CREATE TABLE devices (
    id          text PRIMARY KEY,
    domain      text NOT NULL CHECK (domain IN ('energy', 'waste', 'traffic')),
    name        text,
    lat         double precision CHECK (lat BETWEEN -90 AND 90),
    lon         double precision CHECK (lon BETWEEN -180 AND 180),
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'operator')),
    key_hash    bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE deadletters (
    id              bigserial PRIMARY KEY,
    kafka_topic     text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    received_at     timestamptz NOT NULL,
    topic           text NOT NULL,
    device_id       text,
    reason          text NOT NULL,
    detail          text NOT NULL DEFAULT '',
    payload         text NOT NULL DEFAULT '',
    payload_size    integer NOT NULL DEFAULT 0,
    -- A redelivered dead letter (offset not yet committed when storage crashed) is stored once.
    UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);
CREATE INDEX deadletters_received_at ON deadletters (received_at DESC);
"""

READINGS_COLUMNS = """
    device_id   text NOT NULL,
    metric      text NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL,
    unit        text,
    received_at timestamptz NOT NULL,
    -- A reading is identified by device, metric and time: re-sent duplicates are stored once.
    PRIMARY KEY (device_id, metric, ts)
"""

ROLLUP_COLUMNS = """
    device_id text NOT NULL,
    metric    text NOT NULL,
    bucket    timestamptz NOT NULL,
    n         bigint NOT NULL,
    total     double precision NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    PRIMARY KEY (device_id, metric, bucket)
"""

POSTGRES = f"""
INSERT INTO storage_info VALUES ('backend', 'postgres');

CREATE TABLE readings ({READINGS_COLUMNS}) PARTITION BY RANGE (ts);
CREATE TABLE readings_hourly ({ROLLUP_COLUMNS});
CREATE TABLE readings_daily ({ROLLUP_COLUMNS});

-- Monthly partitions (UTC), created on demand. The advisory lock serialises two writers that
-- both find the same partition missing.
CREATE FUNCTION townpulse_ensure_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('month', at, 'UTC');
    hi timestamptz := (date_trunc('month', at, 'UTC') AT TIME ZONE 'UTC' + interval '1 month')
                      AT TIME ZONE 'UTC';
    part text := 'readings_' || to_char(lo AT TIME ZONE 'UTC', 'YYYY"m"MM');
BEGIN
    IF to_regclass(part) IS NULL THEN
        PERFORM pg_advisory_xact_lock(7310002);
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
            part, lo, hi);
    END IF;
    RETURN part;
END $$;

SELECT townpulse_ensure_partition(now() + (n || ' months')::interval)
FROM generate_series(-1, 2) AS n;
"""

TIMESCALE = f"""
CREATE EXTENSION IF NOT EXISTS timescaledb;
INSERT INTO storage_info VALUES ('backend', 'timescaledb');

CREATE TABLE readings ({READINGS_COLUMNS});
SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '7 days');

CREATE MATERIALIZED VIEW readings_hourly WITH (timescaledb.continuous) AS
SELECT device_id, metric, time_bucket('1 hour', ts) AS bucket,
       count(*) AS n, sum(value) AS total, min(value) AS min, max(value) AS max
FROM readings GROUP BY device_id, metric, time_bucket('1 hour', ts) WITH NO DATA;

CREATE MATERIALIZED VIEW readings_daily WITH (timescaledb.continuous) AS
SELECT device_id, metric, time_bucket('1 day', ts, 'Europe/Paris') AS bucket,
       count(*) AS n, sum(value) AS total, min(value) AS min, max(value) AS max
FROM readings GROUP BY device_id, metric, time_bucket('1 day', ts, 'Europe/Paris') WITH NO DATA;

-- Real-time aggregation: queries see rows not yet materialised.
ALTER MATERIALIZED VIEW readings_hourly SET (timescaledb.materialized_only = false);
ALTER MATERIALIZED VIEW readings_daily SET (timescaledb.materialized_only = false);
SELECT add_continuous_aggregate_policy('readings_hourly',
    start_offset => interval '10 days', end_offset => interval '1 hour',
    schedule_interval => interval '15 minutes');
SELECT add_continuous_aggregate_policy('readings_daily',
    start_offset => interval '10 days', end_offset => interval '1 day',
    schedule_interval => interval '1 hour');

ALTER TABLE readings SET (
    timescaledb.compress, timescaledb.compress_segmentby = 'device_id, metric'
);
-- Older than the late-data window (7 days by default): compressed chunks are read-mostly.
SELECT add_compression_policy('readings', interval '14 days');
-- Raw readings are kept two years; the hourly/daily rollups are kept.
SELECT add_retention_policy('readings', interval '730 days');
"""


# Installed is not enough: without `shared_preload_libraries = 'timescaledb'`, CREATE EXTENSION
# ends the session (FATAL). The loader's own setting exists only when the library is preloaded.
# A database can be kept on plain PostgreSQL with `townpulse.storage_backend = 'postgres'` (the
# tests of the plain path do that on a server that has TimescaleDB).
TIMESCALE_USABLE = """
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
    OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
        AND EXISTS (SELECT 1 FROM pg_settings WHERE name = 'timescaledb.max_background_workers')
        AND coalesce(current_setting('townpulse.storage_backend', true), '') <> 'postgres')
"""


def upgrade() -> None:
    bind = op.get_bind()
    has_timescale = bind.exec_driver_sql(TIMESCALE_USABLE).scalar()
    # On psycopg's own connection (same transaction): several statements in one call, and the
    # '%I' of format() is not taken for a query parameter.
    raw = bind.connection.driver_connection
    assert raw is not None
    raw.execute(COMMON)
    raw.execute(TIMESCALE if has_timescale else POSTGRES)


def downgrade() -> None:
    bind = op.get_bind()
    backend = bind.exec_driver_sql("SELECT value FROM storage_info WHERE key = 'backend'").scalar()
    rollup_kind = "MATERIALIZED VIEW" if backend == "timescaledb" else "TABLE"
    bind.exec_driver_sql(
        f"DROP {rollup_kind} IF EXISTS readings_daily, readings_hourly CASCADE;"
        "DROP TABLE IF EXISTS readings, deadletters, api_keys, devices, storage_info CASCADE;"
        "DROP FUNCTION IF EXISTS townpulse_ensure_partition(timestamptz);"
    )
