"""SQL lives in adapters (issue #25): no SQL statement in a string of services/ or shared/
outside a service's `adapters/` package, the migrations, and the modules listed below, each
with why. A module that stops holding SQL must leave the list (the list only shrinks)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("services", "shared")

# A statement's shape, upper case as the code writes SQL (prose says "select", "insert").
SQL = re.compile(
    r"\bSELECT\b[\s\S]*?\bFROM\b|\bSELECT\s+(pg_\w+|EXISTS|count|[0-9])|\bINSERT\s+INTO\b"
    r"|\bUPDATE\s+\w+(\s+\w+)?\s+SET\b|\bDELETE\s+FROM\b|\bTRUNCATE\b|\bLISTEN\s"
    r"|\b(CREATE|ALTER|DROP)\s+(TEMP\s+|OR\s+REPLACE\s+)?"
    r"(TABLE|INDEX|VIEW|ROLE|SCHEMA|EXTENSION|FUNCTION|TRIGGER|MATERIALIZED)\b"
    r"|\bCOPY\s+\w+\s*\(|\bGRANT\s+[A-Z, ]+\s+ON\b"
)

# path -> why SQL may stay there.
EXCEPTIONS = {
    # Services.
    "services/api/console/repository.py": "the console's queries: they move to "
    "services/api/adapters/ with the console's rework under way (issue #25, its lighting page)",
    "services/api/reports/figures.py": "each figure of the monthly report is a named query that "
    "the report's appendix prints as its method (render.py): the queries are the report's data",
    # shared/ is the services' library: these modules are its adapters, each the one place of
    # its mechanism's SQL (one implementation of each, used by every service).
    "shared/db.py": "the pool, migrations and the database's health",
    "shared/algorithms.py": "the public algorithm register's declarations",
    "shared/audit.py": "the audit log",
    "shared/deadletters.py": "dead letters",
    "shared/erasure.py": "a device's erasure from every table",
    "shared/footprint.py": "the system's own footprint figures",
    "shared/http.py": "the readiness probe's `SELECT 1`",
    "shared/retention.py": "retention policies and their runs",
    "shared/townzone.py": "the daily rollup's time zone",
    "shared/runtime/feedback.py": "technicians' verdicts read by the runtime",
    "shared/runtime/outbox.py": "the alert events' outbox",
    "shared/runtime/states.py": "the models' checkpoints",
    "shared/runtime/tables.py": "the domains' derived rows",
    "shared/stream/offsets.py": "the stream loop's offsets",
}


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, kinds) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def sql_lines(source: str) -> list[int]:
    """Lines of the string literals (f-strings included, docstrings not) that hold SQL."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    lines = set()
    for node in ast.walk(tree):
        if id(node) in docstrings:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = " ".join(
                str(v.value) if isinstance(v, ast.Constant) else "x" for v in node.values
            )
        else:
            continue
        if SQL.search(text):
            lines.add(node.lineno)
    return sorted(lines)


def _outside_adapters() -> dict[str, list[int]]:
    found = {}
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if "adapters" in rel.parts or "migrations" in rel.parts:
                continue
            if lines := sql_lines(path.read_text(encoding="utf-8")):
                found[rel.as_posix()] = lines
    return found


def test_sql_lives_in_adapters() -> None:
    stray = {p: lines for p, lines in _outside_adapters().items() if p not in EXCEPTIONS}
    assert not stray, (
        f"SQL outside adapters (file: lines): {stray}; move it to the service's adapters/ "
        "package and call it by name"
    )


def test_every_exception_still_holds_sql() -> None:
    found = _outside_adapters()
    assert not [p for p in EXCEPTIONS if p not in found], "no SQL left: take it off EXCEPTIONS"


@pytest.mark.parametrize(
    "source",
    [
        'Q = "SELECT id FROM devices WHERE id = %s"',
        'q = f"SELECT {COLUMNS} FROM reports"',
        'Q = """\nINSERT INTO readings (a)\nVALUES (%s)\n"""',
        'Q = ("UPDATE api_keys SET revoked_at = now() " "WHERE id = %s")',
        "run(conn, 'DELETE FROM devices WHERE id = %s')",
        'x = "SELECT pg_advisory_xact_lock_shared(%s, %s)"',
        'x = "SELECT 1"',
        'await conn.execute(f"LISTEN {CHANNEL}")',
        'x = "UPDATE webhook_outbox o SET leased_by = NULL"',
    ],
)
def test_the_scan_sees_sql(source: str) -> None:
    assert sql_lines(source) != []


@pytest.mark.parametrize(
    "source",
    [
        '"""Select the devices from the list: INSERT ... ON CONFLICT makes it idempotent."""',
        'def f():\n    """SELECT id FROM devices: what the adapter runs."""',
        'msg = "select a device from the list"',
        'x = "UPDATE"',
    ],
)
def test_the_scan_leaves_prose_and_docstrings(source: str) -> None:
    assert sql_lines(source) == []
