"""The daily rollup's days in the town's time zone (TOWNPULSE_TIMEZONE), recorded.

0001 built `readings_daily` with Europe/Paris days written into the continuous aggregate's
definition. The zone is now recorded in `storage_info` ('timezone'), and on a database that
holds no reading yet the rollup is rebuilt in the town's zone: the view recreated with the same
grants (on it and on its materialisation), real-time aggregation, refresh and retention
policies. A database that already holds readings keeps its days, and one whose setting differs
is refused with what to do (shared/townzone.py says why the days of stored readings are not
rebuilt). `shared.db.migrate` repeats the step at each start, so a zone set before the first
reading arrives is still applied.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from alembic import context, op

from shared.townzone import INITIAL_ROLLUP_ZONE, ensure_rollup_zone

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _zone() -> str:
    zone = context.config.attributes.get("timezone")
    if zone is None:  # run by Alembic's own command line: the environment's setting
        from shared.db import town_zone

        zone = town_zone()
    return str(zone)


def upgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.execute("INSERT INTO storage_info VALUES ('timezone', %s)", (INITIAL_ROLLUP_ZONE,))
    ensure_rollup_zone(raw, _zone())


def downgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    ensure_rollup_zone(raw, INITIAL_ROLLUP_ZONE)
    raw.execute("DELETE FROM storage_info WHERE key = 'timezone'")
