"""Online-learning runtime (offsets, model checkpoints, outbox) and the energy service's tables.

The runtime keeps a consumer group's offsets, the touched devices' model checkpoints and the
derived rows in one transaction, so a crash can neither lose nor double-count a reading.
Its own branch from 0001 (the alerts branch is 0002): `migrate` applies every head.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-26
"""

from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = ("runtime",)
depends_on = None

UP = """
CREATE TABLE runtime_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);

CREATE TABLE runtime_state (
    group_id      text NOT NULL,
    device_id     text NOT NULL,
    model_version text NOT NULL,
    state         bytea NOT NULL,
    clock         timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, device_id)
);

-- Events for Kafka, written with the effects that caused them; a relay sends and deletes them.
CREATE TABLE runtime_outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL,
    key        bytea,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE energy_scores (
    device_id  text NOT NULL,
    ts         timestamptz NOT NULL,
    observed   double precision NOT NULL,
    expected   double precision NOT NULL,
    lower      double precision NOT NULL,
    upper      double precision NOT NULL,
    score      double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    is_anomaly boolean NOT NULL,
    kind       text,
    PRIMARY KEY (device_id, ts)
);

CREATE TABLE energy_episodes (
    device_id    text NOT NULL,
    kind         text NOT NULL,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    severity     text NOT NULL,
    peak_score   double precision NOT NULL,
    observed_kwh double precision NOT NULL DEFAULT 0,
    expected_kwh double precision NOT NULL DEFAULT 0,
    readings     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, kind, started_at)
);
CREATE INDEX energy_episodes_started ON energy_episodes (started_at);

CREATE TABLE energy_forecasts (
    device_id  text NOT NULL,
    target_ts  timestamptz NOT NULL,
    issued_at  timestamptz NOT NULL,
    expected   double precision NOT NULL,
    lower      double precision NOT NULL,
    upper      double precision NOT NULL,
    PRIMARY KEY (device_id, target_ts)
);
"""


def upgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.execute(UP)


def downgrade() -> None:
    op.get_bind().exec_driver_sql(
        "DROP TABLE IF EXISTS energy_forecasts, energy_episodes, energy_scores, runtime_outbox,"
        " runtime_state, runtime_offsets"
    )
