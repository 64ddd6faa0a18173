"""Access: a read-only `viewer` role, the append-only audit log, open-data publications.

`audit_log` may also be created by the erasure branch (same shape, IF NOT EXISTS), so the two
branches apply in either order.

Revision ID: 0005b_access
Revises: 0002, 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005b_access"
down_revision = ("0002", "0004")
branch_labels = None
depends_on = None

UP = """
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('admin', 'operator', 'viewer'));

CREATE TABLE IF NOT EXISTS audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    key_id  text,
    role    text,
    action  text NOT NULL,
    target  text NOT NULL,
    outcome text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target, id);
CREATE INDEX IF NOT EXISTS audit_log_key ON audit_log (key_id, id);

-- A trigger rather than REVOKE: the services connect as the table's owner, whom REVOKE does
-- not bind. Only a superuser dropping the trigger can rewrite the log.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Nothing is published until an admin says so: no row, no dataset.
CREATE TABLE open_data_publications (
    dataset      text PRIMARY KEY,
    licence      text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    published_by text NOT NULL
);
"""


def upgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.execute(UP)


def downgrade() -> None:
    # Viewer keys are revoked, not deleted (their ids stay in other logs); the role check keeps
    # accepting 'viewer' so those rows stay valid.
    op.get_bind().exec_driver_sql(
        "DROP TABLE IF EXISTS open_data_publications, audit_log;"
        " DROP FUNCTION IF EXISTS audit_log_append_only();"
        " UPDATE api_keys SET revoked_at = now() WHERE role = 'viewer' AND revoked_at IS NULL"
    )
