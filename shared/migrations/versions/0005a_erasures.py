"""Erasure tombstones: readings of an erased device still in Kafka are not stored again.

Kafka keeps its topics for days and a consumer may re-read what it had not committed; a reading
received before its device was erased must not bring the device back. The storage writer skips
readings received at or before the device's erasure; a device registered again later sends
readings received after it, which are stored.

Revision ID: 0005a_erasures
Revises: 0005a_retention
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005a_erasures"
down_revision = "0005a_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.get_bind().exec_driver_sql(
        "CREATE TABLE device_erasures ("
        " device_id text PRIMARY KEY, erased_at timestamptz NOT NULL DEFAULT now())"
    )


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP TABLE device_erasures")
