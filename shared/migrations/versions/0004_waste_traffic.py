"""The waste and traffic services' tables (their offsets and checkpoints live in the runtime's).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UP = """
-- Every fill reading with the cleaned level; flag: glitch, collection, jump or stuck.
CREATE TABLE waste_levels (
    device_id text NOT NULL,
    ts        timestamptz NOT NULL,
    raw       double precision NOT NULL,
    level     double precision NOT NULL,
    flag      text,
    PRIMARY KEY (device_id, ts)
);

CREATE TABLE waste_collections (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    level_before double precision NOT NULL,
    level_after  double precision NOT NULL,
    PRIMARY KEY (device_id, ts)
);

-- Each bin now: level, expected fill rate, predicted full time (the plan reads this).
CREATE TABLE waste_bins (
    device_id       text PRIMARY KEY,
    ts              timestamptz NOT NULL,
    level           double precision NOT NULL,
    rate_pct_h      double precision NOT NULL,
    full_at         timestamptz,
    uncertainty_h   double precision,
    crossed_at      timestamptz,
    last_collection timestamptz,
    temperature_c   double precision,
    rates           jsonb
);
CREATE INDEX waste_bins_full_at ON waste_bins (full_at);

CREATE TABLE waste_episodes (
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
CREATE INDEX waste_episodes_started ON waste_episodes (started_at);

CREATE TABLE traffic_flows (
    device_id      text NOT NULL,
    ts             timestamptz NOT NULL,
    vehicles       double precision NOT NULL,
    speed_kmh      double precision,
    expected       double precision NOT NULL,
    lower          double precision NOT NULL,
    upper          double precision NOT NULL,
    expected_speed double precision,
    score          double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    is_anomaly     boolean NOT NULL,
    kind           text,
    PRIMARY KEY (device_id, ts)
);

CREATE TABLE traffic_forecasts (
    device_id text NOT NULL,
    target_ts timestamptz NOT NULL,
    issued_at timestamptz NOT NULL,
    expected  double precision NOT NULL,
    lower     double precision NOT NULL,
    upper     double precision NOT NULL,
    PRIMARY KEY (device_id, target_ts)
);

CREATE TABLE traffic_episodes (
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
CREATE INDEX traffic_episodes_started ON traffic_episodes (started_at);
"""


def upgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.execute(UP)


def downgrade() -> None:
    op.get_bind().exec_driver_sql(
        "DROP TABLE IF EXISTS traffic_episodes, traffic_forecasts, traffic_flows,"
        " waste_episodes, waste_bins, waste_collections, waste_levels"
    )
