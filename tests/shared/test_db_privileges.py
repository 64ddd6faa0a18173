"""Every database role's effective privileges, against the reviewed matrix (db_privileges.json).

A grant added in a migration changes the matrix: this test fails until the matrix file says the
same, so the new grant is seen in review. Regenerate it (then read the diff) with

    .venv/bin/python -m tests.shared.test_db_privileges

against a running stack. Besides the matrix: what each role must not be able to do, tried.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection, errors

from tests.data_rows import connect, plain_database
from townpulse.stack import Stack
from townpulse.stack.config import DATABASE_ROLES, DOMAIN_SERVICES, MAINTENANCE_ROLE, WATCH_ROLE

pytestmark = pytest.mark.integration

MATRIX = Path(__file__).with_name("db_privileges.json")
# The watch's role only adds footprint samples: it writes no audit entry, unlike a service.
SERVICE_ROLES = tuple(r for r in DATABASE_ROLES if r not in (MAINTENANCE_ROLE, WATCH_ROLE))
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

# The schema's tables, views and sequences (partitions of readings and TimescaleDB's chunks are
# reached through their parent, whose privileges are what counts).
RELATIONS = """
SELECT c.relname AS name, c.relkind AS kind FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND NOT c.relispartition
ORDER BY c.relname
"""


async def privileges(conn: AsyncConnection[Any]) -> dict[str, Any]:
    """What each role may do in this database: attributes, memberships, ownership, table and
    column privileges, the project's functions it may execute."""
    rels = await (await conn.execute(RELATIONS)).fetchall()
    functions = await (
        await conn.execute(
            "SELECT p.oid::regprocedure::text AS sig FROM pg_proc p"
            " WHERE p.pronamespace = 'public'::regnamespace"
            " AND (p.proname LIKE 'townpulse%%' OR p.proname LIKE 'audit_log%%')"
            " ORDER BY 1"
        )
    ).fetchall()
    out: dict[str, Any] = {}
    for role in DATABASE_ROLES:
        attrs = await (
            await conn.execute(
                "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,"
                " rolreplication, rolbypassrls FROM pg_roles WHERE rolname = %s",
                (role,),
            )
        ).fetchone()
        assert attrs is not None, f"role {role} missing"
        member_of = await (
            await conn.execute(
                "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid"
                " JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s ORDER BY 1",
                (role,),
            )
        ).fetchall()
        owns = await (
            await conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
                " WHERE r.rolname = %s AND c.relnamespace = 'public'::regnamespace"
                " UNION ALL SELECT p.oid::regprocedure::text FROM pg_proc p"
                " JOIN pg_roles r ON r.oid = p.proowner WHERE r.rolname = %s ORDER BY 1",
                (role, role),
            )
        ).fetchall()
        tables: dict[str, str] = {}
        columns: dict[str, str] = {}
        for rel in rels:
            name = rel["name"]
            if rel["kind"] == "S":
                kinds: tuple[str, ...] = ("USAGE", "SELECT", "UPDATE")
                check = "has_sequence_privilege"
            else:
                kinds = TABLE_PRIVILEGES
                check = "has_table_privilege"
            held = []
            for kind in kinds:
                row = await (
                    await conn.execute(
                        f"SELECT {check}(%s, %s, %s) AS ok",
                        (role, f"public.{name}", kind),
                    )
                ).fetchone()
                if row and row["ok"]:
                    held.append(kind)
            if held:
                tables[name] = ",".join(held)
            if rel["kind"] != "S" and "SELECT" not in held:
                cols = await (
                    await conn.execute(
                        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = %s::regclass"
                        " AND a.attnum > 0 AND NOT a.attisdropped"
                        " AND has_column_privilege(%s, a.attrelid, a.attnum, 'SELECT')"
                        " ORDER BY a.attnum",
                        (f"public.{name}", role),
                    )
                ).fetchall()
                if cols:
                    columns[name] = ",".join(c["attname"] for c in cols)
        executes = []
        for f in functions:
            row = await (
                await conn.execute(
                    "SELECT has_function_privilege(%s, %s, 'EXECUTE') AS ok", (role, f["sig"])
                )
            ).fetchone()
            if row and row["ok"]:
                executes.append(f["sig"])
        out[role] = {
            "attributes": {k: v for k, v in attrs.items()},
            "member_of": [m["rolname"] for m in member_of],
            "owns": [o["relname"] for o in owns],
            "tables": tables,
            "select_columns_only": columns,
            "execute": executes,
        }
    return out


async def _backend(conn: AsyncConnection[Any]) -> str:
    row = await (
        await conn.execute("SELECT value FROM storage_info WHERE key = 'backend'")
    ).fetchone()
    return str(row["value"]) if row else "postgres"


@pytest.fixture(params=["stack", "plain"])
async def db(request: pytest.FixtureRequest, stack: Stack) -> AsyncIterator[str]:
    if request.param == "stack":
        yield stack.database_url()
    else:
        async with plain_database(stack) as url:
            yield url


async def test_every_role_has_exactly_the_reviewed_privileges(db: str) -> None:
    async with await connect(db) as conn:
        backend = await _backend(conn)
        actual = await privileges(conn)
    expected = json.loads(MATRIX.read_text())[backend]
    for role in DATABASE_ROLES:
        assert actual[role] == expected[role], (
            f"{role}'s privileges differ from {MATRIX.name} ({backend}): review the grant, then"
            " regenerate it with `python -m tests.shared.test_db_privileges`"
        )


async def test_no_service_role_owns_anything_or_is_privileged(stack: Stack) -> None:
    async with await connect(stack.database_url()) as conn:
        actual = await privileges(conn)
    for role in SERVICE_ROLES:
        assert actual[role]["owns"] == [], role
        assert actual[role]["member_of"] == [], role
        attrs = actual[role]["attributes"]
        assert attrs["rolcanlogin"] and not any(
            attrs[a] for a in ("rolsuper", "rolcreaterole", "rolcreatedb", "rolbypassrls")
        ), role
        for table, held in actual[role]["tables"].items():
            assert "TRIGGER" not in held and "TRUNCATE" not in held, (role, table)
    # The maintenance role owns one function (the audit pseudonymisation), no table.
    assert actual[MAINTENANCE_ROLE]["owns"] == ["townpulse_pseudonymise_audit(text,text)"]


async def _as(stack: Stack, role: str) -> AsyncConnection[Any]:
    return await connect(stack.postgres.role_url(role))


async def _refused(conn: AsyncConnection[Any], statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        async with conn.transaction():
            await conn.execute(statement)  # type: ignore[arg-type]


@pytest.mark.parametrize("role", DATABASE_ROLES)
async def test_no_role_can_disable_the_audit_trigger_or_truncate_the_log(
    stack: Stack, role: str
) -> None:
    async with await _as(stack, role) as conn:
        await _refused(conn, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
        await _refused(conn, "ALTER TABLE audit_log DISABLE TRIGGER ALL")
        await _refused(conn, "DROP TRIGGER audit_log_no_change ON audit_log")
        await _refused(conn, "TRUNCATE audit_log")


@pytest.mark.parametrize("role", SERVICE_ROLES)
async def test_service_roles_cannot_rewrite_the_audit_log(stack: Stack, role: str) -> None:
    async with await _as(stack, role) as conn:
        await _refused(conn, "DELETE FROM audit_log")
        await _refused(conn, "UPDATE audit_log SET outcome = 'ok'")
        # Appending is what every service does.
        async with conn.transaction(force_rollback=True):
            await conn.execute(
                "INSERT INTO audit_log (action, target, outcome) VALUES ('test', 'test', 'ok')"
            )


async def test_only_the_domain_services_read_and_write_model_state(stack: Stack) -> None:
    domains = tuple(f"townpulse_{d}" for d in DOMAIN_SERVICES)
    for role in DATABASE_ROLES:
        async with await _as(stack, role) as conn:
            if role in domains:
                await conn.execute("SELECT state FROM runtime_state LIMIT 1")
                continue
            await _refused(conn, "UPDATE runtime_state SET state = state")
            await _refused(
                conn,
                "INSERT INTO runtime_state (group_id, device_id, model_version, state)"
                " VALUES ('x', 'x', 'x', '')",
            )
            if role == MAINTENANCE_ROLE:
                continue  # retention reads what it prunes, and never writes it
            await _refused(conn, "SELECT state FROM runtime_state LIMIT 1")
            await _refused(conn, "SELECT * FROM runtime_state LIMIT 1")


async def test_only_the_api_reads_api_key_hashes(stack: Stack) -> None:
    for role in DATABASE_ROLES:
        async with await _as(stack, role) as conn:
            if role == "townpulse_api":
                await conn.execute("SELECT key_hash FROM api_keys LIMIT 1")
            else:
                await _refused(conn, "SELECT key_hash FROM api_keys LIMIT 1")


async def test_only_alerts_reads_webhook_secrets(stack: Stack) -> None:
    for role in DATABASE_ROLES:
        async with await _as(stack, role) as conn:
            if role == "townpulse_alerts":
                await conn.execute("SELECT secret FROM webhook_subscriptions LIMIT 1")
            else:
                await _refused(conn, "SELECT secret FROM webhook_subscriptions LIMIT 1")


async def _write_matrix() -> None:
    stack = Stack()
    matrix: dict[str, Any] = {}
    async with await connect(stack.database_url()) as conn:
        matrix[await _backend(conn)] = await privileges(conn)
    async with plain_database(stack) as url, await connect(url) as conn:
        matrix[await _backend(conn)] = await privileges(conn)
    MATRIX.write_text(json.dumps(matrix, indent=1, sort_keys=True) + "\n")
    print(f"written: {MATRIX} ({', '.join(sorted(matrix))})", file=sys.stderr)


if __name__ == "__main__":
    try:
        asyncio.run(_write_matrix())
    except psycopg.OperationalError as exc:
        raise SystemExit(f"start the stack first: {exc}") from exc
