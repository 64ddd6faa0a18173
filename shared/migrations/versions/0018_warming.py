"""A device's model says what of it still warms up: the console shows each part's wait.

`runtime_state.warming`: written with each checkpoint by processors that say it (an energy
meter: its band until every day type and hour is seen, its out-of-hours schedule, its level
watch's shifts and drifts, which wait 56 days), as ``{"part": "<ISO time>"}``; NULL once all
are warm. The API reads that column, and still never the state.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE runtime_state ADD COLUMN warming jsonb")
    op.execute("GRANT SELECT (warming) ON runtime_state TO townpulse_api")


def downgrade() -> None:
    op.execute("ALTER TABLE runtime_state DROP COLUMN warming")
