"""The public register of algorithms: what each service declares it runs, the quality figures of
evaluation runs, and the texts an admin sets (contact, town name, introductions).

- `register_algorithms`: one row per algorithm, written by the service that runs it at each
  start (shared/algorithms.py); `changed_at` moves only when the declaration changes.
- `register_quality`: every recorded evaluation run (never updated: the register shows the
  newest per algorithm, the older ones are its history).
- `register_texts`: key -> text, set by admins through the API (audited there).

Grants per 0009's scheme: each declaring service writes the declarations (energy, waste,
traffic, alerts); the API reads them and keeps the figures and texts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

DECLARING = ("energy", "waste", "traffic", "alerts")

UP = f"""
CREATE TABLE register_algorithms (
    id           text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]*\\.[a-z0-9_.-]{{1,80}}$'),
    service      text NOT NULL,
    declaration  jsonb NOT NULL,
    declared_at  timestamptz NOT NULL DEFAULT now(),
    changed_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE register_quality (
    id            bigserial PRIMARY KEY,
    algorithm     text NOT NULL,
    evaluated_at  timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    dataset       text NOT NULL CHECK (length(dataset) BETWEEN 1 AND 200),
    command       text NOT NULL CHECK (length(command) BETWEEN 1 AND 1000),
    figures       jsonb NOT NULL,
    recorded_by   text NOT NULL
);
CREATE INDEX register_quality_latest ON register_quality (algorithm, evaluated_at DESC, id DESC);

CREATE TABLE register_texts (
    key         text PRIMARY KEY CHECK (key ~ '^[a-z_]{{1,40}}$'),
    value       text NOT NULL CHECK (length(value) <= 4000),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON register_algorithms
    TO {", ".join(f"townpulse_{s}" for s in DECLARING)};
GRANT SELECT ON register_algorithms TO townpulse_api;
GRANT SELECT, INSERT ON register_quality TO townpulse_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON register_texts TO townpulse_api;
"""


def upgrade() -> None:
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.execute(UP)


def downgrade() -> None:
    op.get_bind().exec_driver_sql(
        "DROP TABLE IF EXISTS register_algorithms, register_quality, register_texts"
    )
