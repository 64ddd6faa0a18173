"""The devices table announces its changes, so the gateway holds the registry in memory.

Every insert, update (soft delete) or delete of a device sends its id on the channel
`townpulse_devices` when the transaction commits; services/gateway/registry.py follows it.

Revision ID: 0006
Revises: 0005c
Create Date: 2026-12-02
"""

from alembic import op

revision = "0006"
down_revision = "0005c"
branch_labels = None
depends_on = None

UP = """
CREATE FUNCTION townpulse_device_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('townpulse_devices', COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END
$$;

CREATE TRIGGER devices_changed AFTER INSERT OR UPDATE OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION townpulse_device_changed();
"""

DOWN = """
DROP TRIGGER devices_changed ON devices;
DROP FUNCTION townpulse_device_changed();
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
