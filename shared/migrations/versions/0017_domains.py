"""The domains a device may belong to: rows of a `domains` table instead of CHECK lists.

`devices`, `alert_rules` and `device_profiles` each had a CHECK constraint listing the domains
(0001, 0002, 0008), which every new domain had to rewrite (lighting's 0016 did). Their `domain`
now references `domains (name)`, a row per domain, which the migrate step fills from the
registered manifests after the migrations (shared.db.sync_domains): registering a domain adds
its row, no migration lists the domains any more. The constraints allowed domains only (no
platform value; `alerts.domain`, which also holds `platform`, never had one).

The table starts with every domain a row already names, so that existing rows stay valid
whatever the registered domains are. No service role gets a privilege on it: a foreign key is
checked with its table owner's rights, and the services read the domains from the manifests.

Its parent is 0015, not 0016: 0016 (lighting's tables) moved to the lighting domain's own
branch (services/lighting/migrations), which the platform's branch must not depend on. A
database at 0016 has 0015 under it, so this applies there as on a fresh database.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-08
"""

from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None

# The tables whose `domain` names one (their constraints are `<table>_domain_check`, then
# `<table>_domain_fkey`).
REFERENCING = ("devices", "alert_rules", "device_profiles")
# What their constraints allowed at 0015.
BEFORE = ("energy", "waste", "traffic")


def upgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.execute(
        "CREATE TABLE domains (name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,31}$'))"
    )
    used = " UNION ".join(f"SELECT domain FROM {t}" for t in REFERENCING)
    raw.execute(f"INSERT INTO domains (name) {used}")
    for table in REFERENCING:
        raw.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_domain_check,"
            f" ADD CONSTRAINT {table}_domain_fkey FOREIGN KEY (domain) REFERENCES domains (name)"
        )


def downgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    # The CHECK lists 0015's domains and every one the table held: the rows stay valid.
    row = raw.execute(
        "SELECT string_agg(quote_literal(name), ', ' ORDER BY name) FROM"
        " (SELECT name FROM domains UNION SELECT unnest(%s::text[])) d",
        (list(BEFORE),),
    ).fetchone()
    assert row is not None
    for table in REFERENCING:
        raw.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_domain_fkey,"
            f" ADD CONSTRAINT {table}_domain_check CHECK (domain IN ({row[0]}))"
        )
    raw.execute("DROP TABLE domains")
