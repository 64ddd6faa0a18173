"""The technician's feedback on alerts: "real", "false alarm" or "expected", with a note.

`alert_feedback` keeps every verdict given (the latest per alert counts; the earlier ones are its
history, as the audit log also records). It copies what the domain services need to act on it
without asking the alerts service: the device, the kind and the episode's period. The domain
runtimes (shared/runtime/worker.py) read it per batch, like the erasure tombstones, and apply a
verdict at the first reading received after it was given (docs/energy.md, "Feedback").

Grants per 0009's scheme: the alerts service writes it; the domain services read it; the API
reads and erases it (shared/erasure.py); the maintenance role prunes it with the alerts
(ON DELETE CASCADE, shared/retention.py).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UP = """
CREATE TABLE alert_feedback (
    id             bigserial PRIMARY KEY,
    alert_id       text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    device_id      text NOT NULL,
    domain         text NOT NULL,
    kind           text NOT NULL,
    verdict        text NOT NULL CHECK (verdict IN ('real', 'false_alarm', 'expected')),
    note           text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    episode_start  timestamptz NOT NULL,
    episode_end    timestamptz,
    given_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    given_by       text NOT NULL
);
CREATE INDEX alert_feedback_alert ON alert_feedback (alert_id, id DESC);
CREATE INDEX alert_feedback_device ON alert_feedback (device_id, given_at);

GRANT SELECT, INSERT ON alert_feedback TO townpulse_alerts;
GRANT SELECT ON alert_feedback TO townpulse_energy, townpulse_waste, townpulse_traffic;
GRANT SELECT, DELETE ON alert_feedback TO townpulse_api, townpulse_maintenance;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS alert_feedback")
