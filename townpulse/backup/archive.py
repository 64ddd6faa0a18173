"""The files a restore needs that are not in PostgreSQL, packed into one encrypted archive.

What goes in: the run directory's secrets (database passwords, the MQTT admin's, the stack CA's
key), its TLS folder (the CA certificate devices trust), the admin API key file, Mosquitto's
dynamic-security file (every device's MQTT credentials) and persistence, and the TOWNPULSE_*
settings the stack ran with. Not the backup passphrase: it encrypts the archive.

Format: MAGIC, a 16-byte salt, a 12-byte nonce, then AES-256-GCM over a gzipped tar; the key is
scrypt(passphrase, salt). The header is authenticated too (associated data).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"TPFILES1"
SALT_BYTES = 16
NONCE_BYTES = 12
# scrypt's interactive cost (2^15, 8, 1; about 32 MB and 0.1 s): once per backup or restore.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MANIFEST = "manifest.json"


class ArchiveError(RuntimeError):
    pass


@dataclass(frozen=True)
class Member:
    """A file to pack: where it is, and its name in the archive."""

    path: Path
    name: str


def _key(passphrase: str, salt: bytes) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return kdf.derive(passphrase.encode())


def encrypt(data: bytes, passphrase: str) -> bytes:
    """`data` sealed with AES-256-GCM under a key derived from `passphrase` (scrypt), with a
    fresh salt and nonce; the header is authenticated too.

    >>> decrypt(encrypt(b"x", "pw"), "pw")
    b'x'
    """
    salt, nonce = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(NONCE_BYTES)
    header = MAGIC + salt + nonce
    return header + AESGCM(_key(passphrase, salt)).encrypt(nonce, data, header)


def decrypt(blob: bytes, passphrase: str) -> bytes:
    if not blob.startswith(MAGIC):
        raise ArchiveError("not a TownPulse files archive")
    cut = len(MAGIC) + SALT_BYTES + NONCE_BYTES
    header = blob[:cut]
    salt, nonce = header[len(MAGIC) : len(MAGIC) + SALT_BYTES], header[-NONCE_BYTES:]
    try:
        return AESGCM(_key(passphrase, salt)).decrypt(nonce, blob[cut:], header)
    except InvalidTag:
        raise ArchiveError("wrong passphrase, or the archive was altered") from None


def pack(members: Iterable[Member], manifest: dict[str, Any]) -> bytes:
    """A gzipped tar of the members (modes kept, owners not) and the manifest."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m in members:
            if m.path.is_file():
                info = tar.gettarinfo(str(m.path), arcname=m.name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with m.path.open("rb") as f:
                    tar.addfile(info, f)
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(body), 0o600
        tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def write(path: Path, members: Iterable[Member], manifest: dict[str, Any], passphrase: str) -> int:
    """Pack, encrypt and write the archive atomically; its size in bytes."""
    blob = encrypt(pack(members, manifest), passphrase)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(blob)


def read(path: Path, passphrase: str) -> dict[str, bytes]:
    """Every file of an archive by its name (the manifest included)."""
    out: dict[str, bytes] = {}
    raw = decrypt(path.read_bytes(), passphrase)
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
            for info in tar.getmembers():
                if not info.isfile():
                    continue
                f = tar.extractfile(info)
                assert f is not None
                out[info.name] = f.read()
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"{path.name}: damaged archive ({exc})") from exc
    if MANIFEST not in out:
        raise ArchiveError(f"{path.name}: no manifest")
    return out


def manifest_of(files: dict[str, bytes]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(files[MANIFEST])
    return value
