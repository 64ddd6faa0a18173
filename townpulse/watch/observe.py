"""What the watch reads on the machine: disks, the backup report, certificates, restarts."""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from townpulse.stack import Stack, StackSettings
from townpulse.stack.services import keeper
from townpulse.watch.settings import WatchSettings

log = logging.getLogger(__name__)

# What `townpulse backup run` writes after each run (its contract with the watch):
# {"finished_at": ISO-8601 UTC, "ok": bool, "kind": "full"|"diff"|"incr", "size_bytes": int,
#  "duration_s": float, "verified": bool, "repository": str}. No file: no backup yet.
BACKUP_STATUS = "backup-status.json"


@dataclass(frozen=True)
class DiskUse:
    name: str
    path: Path
    used: int
    total: int


class Machine:
    """The stack as the watch sees it, from its settings (the local stack's or the units')."""

    def __init__(self, settings: WatchSettings) -> None:
        self.s = settings
        self.stack = Stack(StackSettings(run_dir=settings.run_dir))

    def data_dirs(self, backup_status: dict[str, Any] | None) -> dict[str, Path]:
        procs = self.stack.procs
        dirs = {
            "postgres": procs.data_dir("postgres", "postgres", create=False),
            "kafka": self.stack.kafka.data_dir,
            "mosquitto": procs.data_dir("mosquitto", "mosquitto", create=False),
        }
        repository = (backup_status or {}).get("repository")
        # A local path (a second disk, a NAS mount); a remote repository is not ours to measure.
        if isinstance(repository, str) and repository.startswith("/"):
            dirs["backup"] = Path(repository)
        return dirs

    def disks(self, backup_status: dict[str, Any] | None) -> list[DiskUse]:
        out = []
        for name, path in self.data_dirs(backup_status).items():
            # The nearest existing folder: the filesystem that the directory fills.
            where = next((p for p in (path, *path.parents) if p.exists()), None)
            if where is None:
                continue
            usage = shutil.disk_usage(where)
            # Used as the filesystem counts it, so that used + free is what users can fill
            # (the reserved blocks of ext4 are neither).
            out.append(DiskUse(name, path, usage.used, usage.used + usage.free))
        return out

    def backup_status(self) -> dict[str, Any] | None:
        path = self.s.run_dir / BACKUP_STATUS
        try:
            status = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s: %s", path, exc)
            return None
        return status if isinstance(status, dict) else None

    def certificates(self) -> dict[str, tuple[Path, datetime]]:
        """Each certificate of the stack and its end: the CA(s) under the run dir's tls/, the
        broker's server certificate (its file, else its TLS handshake) and the API's."""
        out: dict[str, tuple[Path, datetime]] = {}
        for path in sorted((self.s.run_dir / "tls").glob("*.crt")):
            cert = _load(path.read_bytes() if _readable(path) else None)
            if cert is not None:
                out[path.stem] = (path, cert.not_valid_after_utc)
        data = self.stack.procs.data_dir("mosquitto", "mosquitto", create=False)
        server = data / "tls" / "server.crt"
        cert = _load(server.read_bytes() if _readable(server) else self._handshake())
        if cert is not None:
            out["mqtt-server"] = (server, cert.not_valid_after_utc)
        # The operator API's HTTPS certificate (townpulse/stack/services.py), re-issued when
        # the API starts within 30 days of its end: one that is not means the API has not.
        api = self.s.run_dir / "api-tls" / "server.crt"
        cert = _load(api.read_bytes() if _readable(api) else None)
        if cert is not None:
            out["api-server"] = (api, cert.not_valid_after_utc)
        return out

    def _handshake(self) -> bytes | None:
        try:
            pem = ssl.get_server_certificate(("127.0.0.1", self.s.mqtts_port), timeout=5)
        except OSError:
            return None
        return pem.encode()

    def restart_counts(self) -> dict[str, int]:
        """Each service process's restarts so far, as its supervisor counts them."""
        names = self.stack.services.processes()
        if self.s.watch_supervisor == "systemd":
            return {n: c for n in names if (c := _systemd_restarts(n)) is not None}
        out: dict[str, int] = {}
        for name in names:
            if self.stack.procs.pid(keeper(name)) is None:
                continue
            restarts = self.stack.services.restarts(name).get("restarts")
            if isinstance(restarts, int):
                out[name] = restarts
        return out


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False


def _load(pem: bytes | None) -> x509.Certificate | None:
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None


def _systemd_restarts(name: str) -> int | None:
    from townpulse.service.units import unit_name

    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None
    out = subprocess.run(  # noqa: S603 - systemctl with our own unit's name
        [systemctl, "show", "--property=NRestarts", "--value", unit_name(name)],
        capture_output=True,
        text=True,
        check=False,
    )
    value = out.stdout.strip()
    return int(value) if out.returncode == 0 and value.isdigit() else None
