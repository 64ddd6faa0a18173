"""Alerts: rules, alerts with their timeline, webhook subscriptions, the delivery outbox.

The outbox rows of an alert change are written in the transaction that writes the change, so a
crash can lose neither. Consumed Kafka offsets and processed event ids live here too, in the
same transactions, so a crash between the database commit and the Kafka commit double-counts
nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE alert_rules (
    id              text PRIMARY KEY,
    name            text NOT NULL DEFAULT '',
    domain          text NOT NULL CHECK (domain IN ('energy', 'waste', 'traffic')),
    device_id       text,
    metric          text NOT NULL,
    op              text NOT NULL CHECK (op IN ('>=', '>', '<=', '<', 'silent')),
    threshold       double precision NOT NULL,
    hysteresis      double precision NOT NULL DEFAULT 0 CHECK (hysteresis >= 0),
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    kind            text NOT NULL,
    min_duration_s  double precision NOT NULL DEFAULT 0 CHECK (min_duration_s >= 0),
    cooldown_s      double precision NOT NULL DEFAULT 60 CHECK (cooldown_s >= 0),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alerts (
    id                text PRIMARY KEY,
    device_id         text NOT NULL,
    domain            text NOT NULL,
    kind              text NOT NULL,
    rule_id           text,
    state             text NOT NULL
                      CHECK (state IN ('pending', 'open', 'acknowledged', 'resolved')),
    severity          text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    count             integer NOT NULL,
    first_seen        timestamptz NOT NULL,
    last_seen         timestamptz NOT NULL,
    last_observed_at  timestamptz NOT NULL,
    active            boolean NOT NULL,
    active_since      timestamptz,
    clear_since       timestamptz,
    peak_value        double precision,
    explanation       jsonb NOT NULL DEFAULT '{}'::jsonb,
    min_duration_s    double precision NOT NULL,
    cooldown_s        double precision NOT NULL,
    opened_at         timestamptz,
    acknowledged_at   timestamptz,
    acknowledged_by   text,
    resolved_at       timestamptz,
    resolved_by       text,
    version           integer NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- One current (pending, open or acknowledged) alert per device and kind, enforced here too.
CREATE UNIQUE INDEX alerts_one_current ON alerts (device_id, kind) WHERE state <> 'resolved';
CREATE INDEX alerts_opened_at ON alerts (opened_at DESC);

CREATE TABLE alert_timeline (
    id          bigserial PRIMARY KEY,
    alert_id    text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    type        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_timeline_alert ON alert_timeline (alert_id, id);

-- Episode events already applied: a re-emitted event (same id) is a no-op.
CREATE TABLE alert_processed_events (
    event_id     text PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- The next Kafka offset to read, written with the effects of the records before it.
CREATE TABLE alert_consumer_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);

-- When each device last sent something, and its usual period, for "silent device" rules.
CREATE TABLE alert_device_activity (
    device_id   text PRIMARY KEY,
    domain      text NOT NULL,
    last_at     timestamptz NOT NULL,
    period_s    double precision
);

CREATE TABLE webhook_subscriptions (
    id                          text PRIMARY KEY,
    url                         text NOT NULL CHECK (url ~* '^https?://'),
    description                 text NOT NULL DEFAULT '',
    -- Needed in clear to sign (HMAC); never returned by the API after creation or rotation.
    secret                      text NOT NULL,
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    domains                     text[],
    kinds                       text[],
    min_severity                text NOT NULL DEFAULT 'info'
                                CHECK (min_severity IN ('info', 'warning', 'critical')),
    event_types                 text[] NOT NULL,
    retry_schedule_s            integer[],
    enabled                     boolean NOT NULL DEFAULT true,
    disabled_reason             text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_outbox (
    id               bigserial PRIMARY KEY,
    subscription_id  text NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    -- The webhook-id header: the same on every attempt, so receivers can deduplicate.
    msg_id           text NOT NULL,
    alert_id         text NOT NULL,
    event_type       text NOT NULL,
    body             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    -- Failures since the last manual redelivery: the index into the retry schedule.
    round_failures   integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_by        text,
    leased_until     timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    UNIQUE (subscription_id, msg_id)
);
CREATE INDEX webhook_outbox_pending ON webhook_outbox (subscription_id, id)
    WHERE status = 'pending';
CREATE INDEX webhook_outbox_pending_alert ON webhook_outbox (subscription_id, alert_id, id)
    WHERE status = 'pending';
CREATE INDEX webhook_outbox_log ON webhook_outbox (subscription_id, id DESC);

CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    outbox_id    bigint NOT NULL REFERENCES webhook_outbox (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    latency_ms   double precision NOT NULL,
    status_code  integer,
    error        text,
    outcome      text NOT NULL
);
CREATE INDEX webhook_attempts_outbox ON webhook_attempts (outbox_id, attempt);
"""

DOWNGRADE = """
DROP TABLE webhook_attempts, webhook_outbox, webhook_subscriptions, alert_device_activity,
    alert_consumer_offsets, alert_processed_events, alert_timeline, alerts, alert_rules;
"""


def upgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.execute(UPGRADE)


def downgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.execute(DOWNGRADE)
