"""Routes and services reach what their app holds through typed dependencies
(shared.http.AppResource), never through Starlette's untyped `app.state`: the product's sources
are scanned for it, and the scan is shown catching each way of writing it.

A test rather than a ruff rule: ruff's banned-api (flake8-tidy-imports) bans imports and module
attributes, not an attribute of any object named `app`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("shared", "services", "townpulse")
# The one class that reads and writes the app's state, for everyone else.
ALLOWED = {("shared/http.py", "AppResource")}


def _is_app(node: ast.expr) -> bool:
    """`app`, `<anything>.app` or `<anything>["app"]` (an ASGI scope's app)."""
    if isinstance(node, ast.Name):
        return node.id == "app"
    if isinstance(node, ast.Attribute):
        return node.attr == "app"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "app"
    return False


def app_state_uses(source: str, path: str) -> list[str]:
    """`path:line` of each use of an app's `.state` in `source`, outside the allowed class."""
    found: list[str] = []

    def visit(node: ast.AST, owner: str | None) -> None:
        if isinstance(node, ast.ClassDef):
            owner = node.name
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "state"
            and _is_app(node.value)
            and (path, owner) not in ALLOWED
        ):
            found.append(f"{path}:{node.lineno}")
        for child in ast.iter_child_nodes(node):
            visit(child, owner)

    visit(ast.parse(source), None)
    return found


@pytest.mark.parametrize(
    "line",
    [
        "pool = request.app.state.pool",
        "app.state.pool = pool",
        "supervisor = Supervisor(on_fatal=getattr(app.state, 'on_fatal', None))",
        "pool = scope['app'].state.pool",
        "self.app.state.settings.timezone",
    ],
)
def test_the_scan_finds_an_apps_state(line: str) -> None:
    assert app_state_uses(f"def f():\n    {line}\n", "services/x/routes.py") == [
        "services/x/routes.py:2"
    ]


def test_the_scan_leaves_a_requests_own_state_alone() -> None:
    # Per request, not per app: the Gate's principal, the audit log's target.
    source = "def f(request):\n    request.state.audit_target = 'x'\n    scope['state']\n"
    assert app_state_uses(source, "services/x/routes.py") == []


def test_the_allowed_class_is_where_it_is_said_to_be() -> None:
    for path, owner in ALLOWED:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        assert owner in {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        assert app_state_uses((ROOT / path).read_text(encoding="utf-8"), "elsewhere.py")


def test_the_product_reads_its_apps_through_typed_dependencies() -> None:
    files = sorted(f for package in PRODUCT for f in (ROOT / package).rglob("*.py"))
    assert len(files) > 100  # the sources were found
    found = [
        use
        for f in files
        for use in app_state_uses(f.read_text(encoding="utf-8"), f.relative_to(ROOT).as_posix())
    ]
    assert found == [], "use a shared.http.AppResource instead of app.state: " + ", ".join(found)
