"""The files archive: what goes in comes out with the passphrase, and nothing without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from townpulse.backup import archive

pytestmark = pytest.mark.unit


def _members(tmp_path: Path) -> list[archive.Member]:
    (tmp_path / "dynamic-security.json").write_text('{"clients": []}')
    (tmp_path / "mqtt-ca.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    return [
        archive.Member(tmp_path / "dynamic-security.json", "mosquitto/dynamic-security.json"),
        archive.Member(tmp_path / "mqtt-ca.key", "run/secrets/mqtt-ca.key"),
        archive.Member(tmp_path / "missing", "run/admin-api-key"),
    ]


def test_round_trip_keeps_every_file_and_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "x.tpfiles"
    size = archive.write(path, _members(tmp_path), {"label": "L1"}, "correct horse")
    files = archive.read(path, "correct horse")
    assert size == path.stat().st_size
    assert path.stat().st_mode & 0o777 == 0o600
    assert files["mosquitto/dynamic-security.json"] == b'{"clients": []}'
    assert files["run/secrets/mqtt-ca.key"].startswith(b"-----BEGIN")
    assert "run/admin-api-key" not in files  # a file that is not there is left out
    assert archive.manifest_of(files) == {"label": "L1"}


def test_nothing_readable_without_the_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "x.tpfiles"
    archive.write(path, _members(tmp_path), {"label": "L1"}, "correct horse")
    blob = path.read_bytes()
    assert b"BEGIN PRIVATE KEY" not in blob and b"clients" not in blob
    with pytest.raises(archive.ArchiveError, match="wrong passphrase"):
        archive.read(path, "wrong horse")


def test_an_altered_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.tpfiles"
    archive.write(path, _members(tmp_path), {"label": "L1"}, "pw")
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(archive.ArchiveError):
        archive.read(path, "pw")
    path.write_bytes(b"not an archive")
    with pytest.raises(archive.ArchiveError, match="not a TownPulse"):
        archive.read(path, "pw")
