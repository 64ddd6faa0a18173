"""A device's model says until when it is learning: the console shows "learning" meanwhile.

`runtime_state.learning_until`: written with each checkpoint by processors that warm up
(shared/ml/warmup.py): NULL once the model is calibrated (or for a processor without a
warm-up), else roughly when it will be. The API reads that column, and still never the state.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE runtime_state ADD COLUMN learning_until timestamptz")
    op.execute("GRANT SELECT (learning_until) ON runtime_state TO townpulse_api")


def downgrade() -> None:
    op.execute("ALTER TABLE runtime_state DROP COLUMN learning_until")
