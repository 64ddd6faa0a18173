"""pgBackRest for the stack's PostgreSQL: its configuration, and its commands run as `postgres`.

PostgreSQL archives every WAL segment through `archive-push` into the repository under
`TOWNPULSE_BACKUP_DIR/pgbackrest`, encrypted (aes-256-cbc) with the backup passphrase, which is
generated once and kept in the run directory's secrets, never in the backup directory.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

from townpulse.stack.config import StackError, StackSettings
from townpulse.stack.processes import Processes, base_env, reachable_by

STANZA = "townpulse"
PASSPHRASE = "backup-passphrase"  # noqa: S105 - the secret file's name, not a secret
# A segment is archived when it fills or after this many seconds, whichever comes first: the
# readings acknowledged in the last minute are at most what a dead disk loses from PostgreSQL
# (the target is 5 minutes). An idle minute archives a mostly empty 16 MB segment, which
# compression shrinks to a few kB in the repository.
ARCHIVE_TIMEOUT_S = 60
# Full backups weekly and differentials daily (docs/operations.md): 4 fulls are 4 weeks, and
# 7 differentials a week of days. pgBackRest keeps the WAL every kept backup needs, so any
# moment of the last 4 weeks can be restored.
RETENTION_FULL = 4
RETENTION_DIFF = 7


class PgBackRest:
    def __init__(self, procs: Processes, settings: StackSettings, *, pg_data: Path) -> None:
        self.p = procs
        self.s = settings
        self.pg_data = pg_data

    # ---- paths ---------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """Its configuration, logs, locks and the password file: readable by `postgres` only."""
        return self.p.data_dir("pgbackrest", "postgres")

    @property
    def config_file(self) -> Path:
        return self.home / "pgbackrest.conf"

    def repo_path(self, backup_dir: Path | None = None) -> Path:
        return (backup_dir or self.s.backup_dir) / "pgbackrest"

    def passphrase(self) -> tuple[str, bool]:
        """The backup passphrase and whether it was made just now (then it is shown once)."""
        created = not (self.p.secrets_dir / PASSPHRASE).exists()
        return self.p.secret(PASSPHRASE), created

    def archive_options(self) -> list[str]:
        """PostgreSQL's `-c` options for continuous archiving: applied at every start, so an
        existing cluster starts archiving at its next restart."""
        push = f"pgbackrest --config={self.config_file} --stanza={STANZA} archive-push %p"
        return [
            "-c",
            "wal_level=replica",
            "-c",
            "archive_mode=on",
            "-c",
            f"archive_command={push}",
            "-c",
            f"archive_timeout={ARCHIVE_TIMEOUT_S}",
        ]

    # ---- configuration -------------------------------------------------------------------

    def write_config(
        self,
        *,
        backup_dir: Path | None = None,
        path: Path | None = None,
        passphrase: str | None = None,
    ) -> Path:
        """pgBackRest's configuration (repository in `backup_dir`, default the settings'; the
        run directory's passphrase unless another is given, as for a backup of another
        machine)."""
        repo = self.repo_path(backup_dir)
        self._own_dir(repo.parent, mode=0o711)
        if not reachable_by(repo.parent, pwd.getpwnam("postgres")):
            raise StackError(
                f"PostgreSQL's user cannot reach {repo.parent}: give its parent folders the"
                " execute permission for others (chmod o+x), or choose another"
                " TOWNPULSE_BACKUP_DIR"
            )
        self._own_dir(repo, mode=0o700, owner="postgres")
        home = self.home
        if passphrase is None:
            passphrase, _ = self.passphrase()
        conf = f"""[global]
repo1-path={repo}
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass={passphrase}
repo1-retention-full={RETENTION_FULL}
repo1-retention-diff={RETENTION_DIFF}
compress-type=zst
start-fast=y
process-max=1
archive-timeout=120
log-path={home / "log"}
lock-path={home / "lock"}
spool-path={home / "spool"}
log-level-console=warn
log-level-stderr=error
log-level-file=info

[{STANZA}]
pg1-path={self.pg_data}
pg1-port={self.s.postgres_port}
pg1-user=postgres
"""
        target = path or self.config_file
        self._write_private(target, conf)
        # libpq reads the superuser's password from here (no Unix socket: TCP to 127.0.0.1).
        pgpass = (
            f"127.0.0.1:{self.s.postgres_port}:*:postgres:{self.p.secret('postgres-superuser')}"
        )
        self._write_private(home / "pgpass", pgpass + "\n")
        return target

    def _write_private(self, path: Path, text: str) -> None:
        pw = pwd.getpwnam("postgres")
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.replace(tmp, path)

    @staticmethod
    def _own_dir(path: Path, *, mode: int, owner: str | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, mode)

    # ---- commands ------------------------------------------------------------------------

    def run(
        self, *args: str, config: Path | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """One pgBackRest command as `postgres` (it reads the cluster's files and owns the
        repository); StackError with its own message when it fails."""
        pw = pwd.getpwnam("postgres")
        env = {
            **base_env(),
            "PGHOST": "127.0.0.1",
            "PGPASSFILE": str(self.home / "pgpass"),
        }
        argv = ["pgbackrest", f"--config={config or self.config_file}", f"--stanza={STANZA}", *args]
        try:
            done = subprocess.run(
                argv,
                user=pw.pw_uid,
                group=pw.pw_gid,
                extra_groups=[],
                env=env,
                cwd="/",
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise StackError("pgbackrest is not installed: run deploy/install.sh") from exc
        if done.returncode != 0:
            raise StackError(
                f"pgbackrest {args[0]} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        return done

    def ensure_stanza(self) -> None:
        """Create the stanza in the repository (idempotent; needs PostgreSQL running)."""
        self.run("stanza-create")

    def info(self, *, config: Path | None = None) -> list[dict[str, Any]]:
        """The repository's backups, oldest first (pgBackRest's own JSON)."""
        out = self.run("info", "--output=json", config=config).stdout
        stanzas = json.loads(out or "[]")
        for stanza in stanzas:
            if stanza.get("name") == STANZA:
                return list(stanza.get("backup", []))
        return []
