"""The domains a device may belong to live in the database (migration 0017), filled by the migrate
step from the registered manifests; the lighting domain's migration is its own Alembic branch.

Against the stack's PostgreSQL: a fresh database, and one migrated by the release before the
move (its own code, taken with `git archive`, holding rows of the four domains) upgrading to
this one, and going back down 0017.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from psycopg import sql

from shared import domains
from shared.db import alembic_config, migrate
from tests.domain_support import extra_domain, register
from tests.migration_support import empty_database, tree_before
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

REFERENCING = ("devices", "alert_rules", "device_profiles")
# Where 0016 was a platform migration (it moved to the lighting domain's folder).
OLD_0016 = "shared/migrations/versions/0016_lighting.py"

# Run by the previous release's Python, in its own tree: migrate, then a row of each domain in
# each table whose `domain` its CHECK constraints listed.
LOAD = """
import sys
import psycopg
from shared.db import migrate

url = sys.argv[1]
migrate(url)
with psycopg.connect(url) as conn:
    for d in ("energy", "waste", "traffic", "lighting"):
        conn.execute("INSERT INTO devices (id, domain) VALUES (%s, %s)", (f"old-{d}", d))
        conn.execute(
            "INSERT INTO alert_rules (id, domain, metric, op, threshold, severity, kind)"
            " VALUES (%s, %s, 'm', '>=', 1, 'warning', 'k')", (f"rule-{d}", d))
        conn.execute(
            "INSERT INTO device_profiles (name, domain, definition) VALUES (%s, %s, '{}')",
            (f"profile-{d}", d))
"""


@pytest.fixture
def scratch(stack: Stack) -> Iterator[str]:
    with empty_database(stack, "tp_domains") as url:
        yield url


def _heads(url: str) -> set[str]:
    """The revisions a database at the heads records: the tips of the branches, but not those
    another revision depends on (0005a_erasures, 0005b_access: 0009's `depends_on`)."""
    script = ScriptDirectory.from_config(alembic_config(url))
    needed: set[str] = set()
    for revision in script.walk_revisions():
        deps = revision.dependencies or ()
        needed.update((deps,) if isinstance(deps, str) else deps)
    return set(script.get_heads()) - needed


def _state(url: str) -> dict[str, Any]:
    """The database's revisions, domains, and the constraints on each table's `domain`."""
    with psycopg.connect(url) as conn:
        revisions = {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
        exists = conn.execute("SELECT to_regclass('public.domains')").fetchone()
        names = (
            [r[0] for r in conn.execute("SELECT name FROM domains ORDER BY name")]
            if exists != (None,)
            else None
        )
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE conrelid::regclass::text = ANY(%s)"
            " AND conname LIKE '%%domain%%' ORDER BY 1, 2",
            (list(REFERENCING),),
        ).fetchall()
    return {"revisions": revisions, "domains": names, "constraints": constraints}


def _foreign_keys() -> list[tuple[str, str, str]]:
    return [
        (t, f"{t}_domain_fkey", "FOREIGN KEY (domain) REFERENCES domains(name)")
        for t in sorted(REFERENCING)
    ]


def test_a_fresh_database_lists_the_registered_domains_in_a_table(scratch: str) -> None:
    migrate(scratch)
    state = _state(scratch)
    assert state["revisions"] == _heads(scratch)
    assert "0016" in state["revisions"] and len(state["revisions"]) == 2
    assert state["domains"] == sorted(domains.names())
    assert state["constraints"] == _foreign_keys()
    with psycopg.connect(scratch) as conn:
        for name in domains.names():
            conn.execute("INSERT INTO devices (id, domain) VALUES (%s, %s)", (f"d-{name}", name))
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="parking"):
            conn.execute("INSERT INTO devices (id, domain) VALUES ('p-1', 'parking')")
    # Again: nothing to apply, nothing added twice.
    migrate(scratch)
    assert _state(scratch) == state


def test_a_new_domain_is_a_row_added_by_the_migrate_step(
    scratch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(scratch)
    registered = domains.names()
    register(monkeypatch, extra_domain())
    migrate(scratch)
    assert _state(scratch)["domains"] == sorted([*registered, "lamps"])
    with psycopg.connect(scratch) as conn:
        conn.execute("INSERT INTO devices (id, domain) VALUES ('lamp-1', 'lamps')")


def _rows(url: str) -> dict[str, list[tuple[str, str]]]:
    with psycopg.connect(url) as conn:
        return {
            table: [
                (str(r[0]), str(r[1]))
                for r in conn.execute(
                    sql.SQL("SELECT {}, domain FROM {} ORDER BY 1").format(
                        sql.Identifier("name" if table == "device_profiles" else "id"),
                        sql.Identifier(table),
                    )
                )
            ]
            for table in REFERENCING
        }


def test_a_database_at_the_old_0016_upgrades_and_0017_goes_back_down(
    scratch: str, tmp_path: Path
) -> None:
    # The code at the commit before 0016 left shared/migrations.
    previous = tree_before(tmp_path, path=OLD_0016, change="D")
    assert (previous / OLD_0016).exists()
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD, scratch],
        cwd=previous,
        env={**os.environ, "PYTHONPATH": str(previous)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    before = _state(scratch)
    assert before["revisions"] == {"0016"}
    assert before["domains"] is None
    checks = [f"{t}_domain_check" for t in sorted(REFERENCING)]
    assert [c[1] for c in before["constraints"]] == checks
    rows = _rows(scratch)
    assert {d for table in rows.values() for _, d in table} == {
        "energy",
        "waste",
        "traffic",
        "lighting",
    }

    migrate(scratch)

    after = _state(scratch)
    # 0016 is the lighting branch's head now, the platform's is 0017 or a later one: both
    # applied, nothing twice.
    assert after["revisions"] == _heads(scratch)
    assert "0016" in after["revisions"] and len(after["revisions"]) == 2
    assert after["domains"] == sorted(domains.names())
    assert after["constraints"] == _foreign_keys()
    assert _rows(scratch) == rows
    with psycopg.connect(scratch) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(
            "INSERT INTO alert_rules (id, domain, metric, op, threshold, severity, kind)"
            " VALUES ('r-p', 'parking', 'm', '>=', 1, 'warning', 'k')"
        )

    # Down 0017 only: the CHECK constraints come back, listing every domain the table held.
    cfg = alembic_config(scratch)
    # The platform's later revisions first, then 0017 alone (lighting's branch stays).
    command.downgrade(cfg, "0017")
    command.downgrade(cfg, "0017@-1")
    down = _state(scratch)
    assert down["revisions"] == {"0016"} and down["domains"] is None
    listed = ", ".join(f"'{d}'::text" for d in sorted(domains.names()))
    assert [c[1:] for c in down["constraints"]] == [
        (f"{t}_domain_check", f"CHECK ((domain = ANY (ARRAY[{listed}])))")
        for t in sorted(REFERENCING)
    ]
    assert _rows(scratch) == rows
    migrate(scratch)
    assert _state(scratch) == after


def test_services_name_a_domain_without_any_privilege_on_the_table(stack: Stack) -> None:
    """A foreign key is checked with the referenced table's owner's rights: the API's role adds a
    device of a registered domain, and may neither read nor change the domains."""
    device_id = f"fk-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.postgres.role_url("townpulse_api"), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO devices (id, domain) VALUES (%s, %s)", (device_id, domains.names()[0])
        )
        conn.execute("DELETE FROM devices WHERE id = %s", (device_id,))
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO devices (id, domain) VALUES (%s, 'parking')", (device_id,))
        for statement in ("SELECT * FROM domains", "INSERT INTO domains VALUES ('parking')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)  # type: ignore[arg-type]
