"""The monthly report's archive, and the collection plans it sums.

- `reports`: each generated report (a period, a language), its figures as JSON (what the console
  page shows and the tests reconcile), the factors' version it used, and the PDF itself with its
  SHA-256. One report per period and language: generating it again is a no-op.
- `waste_plans`: the waste service's collection plan of each round day, recorded once by the
  service itself at the round hour (km of the plan, km of a tour visiting every bin), with the
  town's fixed schedule it replaces as it was set that day (visits of each bin per week, round
  days per week): the report compares the plans with that schedule over the same weeks.
- The API announces a report to the webhooks that asked for `report.published`: it reads which
  subscriptions want it (not their secrets) and queues the event in their outbox, which the
  alerts service signs and delivers like any other.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UP = """
CREATE TABLE reports (
    id              text PRIMARY KEY,
    period_start    date NOT NULL,
    period_end      date NOT NULL,
    lang            text NOT NULL CHECK (lang IN ('fr', 'en')),
    kind            text NOT NULL CHECK (kind IN ('monthly', 'on_demand')),
    generated_at    timestamptz NOT NULL DEFAULT now(),
    factors_version text NOT NULL,
    figures         jsonb NOT NULL,
    pdf             bytea NOT NULL,
    size_bytes      integer NOT NULL,
    sha256          text NOT NULL,
    CHECK (period_start < period_end),
    UNIQUE (period_start, period_end, lang)
);
CREATE INDEX reports_period ON reports (period_start DESC);

CREATE TABLE waste_plans (
    day          date PRIMARY KEY,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    bins         integer NOT NULL,
    every_bins   integer NOT NULL,
    vehicles     integer NOT NULL,
    km           double precision NOT NULL,
    every_bin_km double precision NOT NULL,
    -- The fixed schedule the plans are compared with, as set on that day (docs/report.md).
    fixed_visits_per_week double precision NOT NULL CHECK (fixed_visits_per_week > 0),
    rounds_per_week integer NOT NULL CHECK (rounds_per_week BETWEEN 1 AND 7)
);

GRANT SELECT, INSERT, UPDATE ON reports TO townpulse_api;
GRANT SELECT ON waste_plans TO townpulse_api;
GRANT SELECT, INSERT, UPDATE ON waste_plans TO townpulse_waste;
GRANT SELECT (id, enabled, event_types) ON webhook_subscriptions TO townpulse_api;
GRANT INSERT ON webhook_outbox TO townpulse_api;
GRANT USAGE ON SEQUENCE webhook_outbox_id_seq TO townpulse_api;
"""


def upgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.execute(UP)


def downgrade() -> None:
    op.get_bind().exec_driver_sql(
        "REVOKE INSERT ON webhook_outbox FROM townpulse_api;"
        " REVOKE USAGE ON SEQUENCE webhook_outbox_id_seq FROM townpulse_api;"
        " REVOKE SELECT (id, enabled, event_types) ON webhook_subscriptions FROM townpulse_api;"
        " DROP TABLE IF EXISTS waste_plans, reports"
    )
