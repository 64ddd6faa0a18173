"""What the migration tests share: an empty scratch database of the stack's server, and this
tree's code as it was before a commit that changed a file (a previous release to upgrade from)."""

from __future__ import annotations

import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from townpulse.stack import REPO, Stack


@contextmanager
def empty_database(stack: Stack, prefix: str) -> Iterator[str]:
    """A new, empty database owned by the platform's role (`<prefix>_<random>`): its URL;
    dropped afterwards, whoever is still connected."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    ident = sql.Identifier(name)
    with psycopg.connect(stack.superuser_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER townpulse").format(ident))
        try:
            yield stack.database_url().rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident))


def tree_before(tmp: Path, *, path: str, change: str) -> Path:
    """This tree's code at the parent of the first commit that made `change` (git's diff
    filter: A added, D deleted) to `path`, extracted under `tmp`."""
    commits = subprocess.run(
        ["git", "log", f"--diff-filter={change}", "--format=%H", "--", path],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not commits:
        pytest.skip(f"no commit in this checkout's history changed {path} (a shallow clone)")
    tree = tmp / "previous"
    tree.mkdir()
    tarball = tmp / "previous.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(tarball), f"{commits[-1]}^"],
        cwd=REPO,
        check=True,
    )
    with tarfile.open(tarball) as tar:
        tar.extractall(tree, filter="data")
    return tree
