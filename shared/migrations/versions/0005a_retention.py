"""Retention for every per-reading and per-event table; the audit log erasures write to.

On TimescaleDB the per-reading outputs of the models (energy_scores, waste_levels,
traffic_flows) become hypertables like readings, so that retention drops whole chunks instead of
deleting row by row; their retention policies follow the settings (shared/retention.py). Every
table pruned by a time column gets an index on it, so that the scheduled deletes do not scan.

Chunks of 7 days (readings' since 0001, and these): a town of 500 sensors reporting every
5 minutes writes about 1 M rows a week per table, some 150 MB with the primary key, which keeps
the chunk being written in the memory of a small server (TimescaleDB's guidance: the recent
chunks of all hypertables within a quarter of RAM) and a two-year retention within ~105 chunks.
A bigger town shortens them with `set_chunk_time_interval` (new chunks only).

The continuous aggregates are refreshed only beyond the gateway's late-data window (below), so
that a late reading is counted at once.

`audit_log` is the access branch's (0005b) table, created here too (same shape, IF NOT EXISTS)
so that the two branches apply in either order.

Revision ID: 0005a_retention
Revises: 0002, 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005a_retention"
down_revision = ("0002", "0004")
branch_labels = None
depends_on = None

COMMON = """
CREATE INDEX IF NOT EXISTS energy_forecasts_target ON energy_forecasts (target_ts);
CREATE INDEX IF NOT EXISTS traffic_forecasts_target ON traffic_forecasts (target_ts);
CREATE INDEX IF NOT EXISTS waste_collections_ts ON waste_collections (ts);
CREATE INDEX IF NOT EXISTS alerts_resolved_at ON alerts (resolved_at) WHERE state = 'resolved';
CREATE INDEX IF NOT EXISTS alerts_device ON alerts (device_id);
CREATE INDEX IF NOT EXISTS deadletters_device ON deadletters (device_id);
CREATE INDEX IF NOT EXISTS webhook_outbox_created ON webhook_outbox (created_at);
CREATE INDEX IF NOT EXISTS webhook_outbox_alert ON webhook_outbox (alert_id);
CREATE INDEX IF NOT EXISTS runtime_outbox_created ON runtime_outbox (created_at);
CREATE INDEX IF NOT EXISTS alert_processed_events_at ON alert_processed_events (processed_at);
CREATE INDEX IF NOT EXISTS runtime_state_device ON runtime_state (device_id);

CREATE TABLE IF NOT EXISTS audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    key_id  text,
    role    text,
    action  text NOT NULL,
    target  text NOT NULL,
    outcome text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target, id);
CREATE INDEX IF NOT EXISTS audit_log_key ON audit_log (key_id, id);
"""

PER_READING = ("energy_scores", "waste_levels", "traffic_flows")

POSTGRES = "\n".join(f"CREATE INDEX IF NOT EXISTS {t}_ts ON {t} (ts);" for t in PER_READING)

# migrate_data: a database upgraded from an earlier version already has rows in them.
TIMESCALE = (
    "\n".join(
        f"SELECT create_hypertable('{t}', by_range('ts', interval '7 days'), migrate_data => true);"
        for t in PER_READING
    )
    + """
-- Materialise only buckets that can no longer change. Real-time aggregation reads raw readings
-- above the materialised range only: a late reading below it stays invisible until the next
-- refresh. The gateway accepts readings up to 7 days old (GatewaySettings.max_age_s), so the
-- refresh stops 8 days back (a day's margin for readings in flight) and everything newer is
-- aggregated from the raw readings, exact at once. Cost: at most 8 days of one device's
-- readings (~2,300 at 5 minutes) aggregated per query.
SELECT remove_continuous_aggregate_policy('readings_hourly', if_exists => true);
SELECT remove_continuous_aggregate_policy('readings_daily', if_exists => true);
SELECT add_continuous_aggregate_policy('readings_hourly',
    start_offset => interval '15 days', end_offset => interval '8 days',
    schedule_interval => interval '1 hour');
SELECT add_continuous_aggregate_policy('readings_daily',
    start_offset => interval '15 days', end_offset => interval '8 days',
    schedule_interval => interval '1 hour');
"""
)


def upgrade() -> None:
    bind = op.get_bind()
    backend = bind.exec_driver_sql("SELECT value FROM storage_info WHERE key = 'backend'").scalar()
    raw = bind.connection.driver_connection
    assert raw is not None
    raw.execute(COMMON)
    raw.execute(TIMESCALE if backend == "timescaledb" else POSTGRES)


def downgrade() -> None:
    # Hypertables stay hypertables (TimescaleDB cannot turn them back); the indexes go.
    op.get_bind().exec_driver_sql(
        "DROP INDEX IF EXISTS energy_forecasts_target, traffic_forecasts_target,"
        " waste_collections_ts, alerts_resolved_at, alerts_device, deadletters_device,"
        " webhook_outbox_created, webhook_outbox_alert, runtime_outbox_created,"
        " alert_processed_events_at, runtime_state_device, energy_scores_ts, waste_levels_ts,"
        " traffic_flows_ts"
    )
