"""TimescaleDB on every install: the pinned release, checked against its SHA-256 before it is
built, and plain PostgreSQL only with a warning that `up`/`status` repeat."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from townpulse.stack import DEPLOY, StackSettings
from townpulse.stack.postgres import FALLBACK_FILE, Postgres
from townpulse.stack.processes import Processes

pytestmark = pytest.mark.unit

RELEASE = DEPLOY / "timescaledb-release.sh"
VENDORED = Path(__file__).resolve().parents[3] / "shared" / "vendor"


def _pinned() -> dict[str, str]:
    return dict(re.findall(r"^(TIMESCALEDB_\w+)=\"?([^\"\n]*)\"?$", RELEASE.read_text(), re.M))


def test_the_pin_is_the_release_archive() -> None:
    pinned = _pinned()
    version = pinned["TIMESCALEDB_VERSION"]
    assert version == "2.28.3"
    assert re.fullmatch(r"[0-9a-f]{64}", pinned["TIMESCALEDB_SHA256"])
    assert pinned["TIMESCALEDB_URL"] == (
        "https://github.com/timescale/timescaledb/archive/refs/tags/${TIMESCALEDB_VERSION}.tar.gz"
    )
    tarball = VENDORED / f"timescaledb-{version}.tar.gz"
    if not tarball.exists():
        pytest.skip(f"no vendored {tarball.name} to compare with")
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == pinned["TIMESCALEDB_SHA256"]
    with tarfile.open(tarball) as tar:
        # GitHub's archive of a tag: one top directory named <repository>-<tag>.
        assert {m.name.split("/", 1)[0] for m in tar.getmembers()} == {f"timescaledb-{version}"}
        config = tar.extractfile(f"timescaledb-{version}/version.config")
        assert config is not None
        assert f"version = {version}\n" in config.read().decode()


def _tarball(path: Path, version: str) -> Path:
    """A tarball shaped like TimescaleDB's source, which is not the pinned release."""
    data = f"version = {version}\n".encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"timescaledb-{version}/version.config")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_a_tarball_with_another_checksum_is_refused(tmp_path: Path) -> None:
    source = _tarball(tmp_path / "timescaledb.tar.gz", _pinned()["TIMESCALEDB_VERSION"])
    prefix = tmp_path / "prefix"
    result = subprocess.run(
        ["bash", str(DEPLOY / "build-timescaledb.sh"), str(source), str(prefix)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 4, result.stderr
    assert "refusing to build" in result.stderr
    assert not prefix.exists()


def test_an_unreachable_source_is_told_apart(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(DEPLOY / "build-timescaledb.sh"), str(tmp_path / "absent.tar.gz"), "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # 3: install.sh falls back to plain PostgreSQL with a warning (4 would stop the install).
    assert result.returncode == 3


def test_status_repeats_why_the_stack_runs_on_plain_postgresql(tmp_path: Path) -> None:
    if (Path("/usr/share/postgresql/15/extension") / "timescaledb.control").exists():
        pytest.skip("the machine's PostgreSQL has TimescaleDB")
    settings = StackSettings(run_dir=tmp_path, timescaledb_prefix=tmp_path / "none")
    postgres = Postgres(Processes(tmp_path), settings)
    (tmp_path / FALLBACK_FILE).write_text("could not fetch https://example.invalid (offline?)\n")
    said = postgres.backend()
    assert said.startswith("WARNING: plain PostgreSQL")
    assert "could not fetch https://example.invalid (offline?)" in said
    (tmp_path / FALLBACK_FILE).unlink()
    assert "see deploy/install.sh" in postgres.backend()
