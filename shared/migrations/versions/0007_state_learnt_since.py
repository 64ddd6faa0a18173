"""A checkpointed model says since when it learns: an erasure is never undone by a checkpoint.

`runtime_state.learnt_since`: when the first reading this state learnt from was received. A
state that learnt from readings received before its device's erasure is not saved, and not
restored if an earlier save raced the erasure (shared/runtime/worker.py). Rows from before this
column are NULL: of unknown age, so any erasure of their device discards them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE runtime_state ADD COLUMN learnt_since timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE runtime_state DROP COLUMN learnt_since")
