"""PostgreSQL (with TimescaleDB when it is installed), run as its own user under the run dir."""

from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
from pathlib import Path

from townpulse.stack.config import PG_BIN, StackError, StackSettings
from townpulse.stack.pgbackrest import PgBackRest
from townpulse.stack.processes import Processes, base_env, can_connect, wait_port, wait_until

log = logging.getLogger("townpulse.stack")

NAME = "postgres"


class Postgres:
    def __init__(self, procs: Processes, settings: StackSettings) -> None:
        self.p = procs
        self.s = settings
        # Set by `start` when it generated the backup passphrase: `up` shows it once.
        self.new_backup_passphrase: str | None = None

    @property
    def data(self) -> Path:
        return self.p.data_dir("postgres", "postgres")

    @property
    def backrest(self) -> PgBackRest:
        return PgBackRest(self.p, self.s, pg_data=self.data)

    def database_url(self) -> str:
        return (
            f"postgresql://townpulse:{self.p.secret('postgres-townpulse')}"
            f"@127.0.0.1:{self.s.postgres_port}/townpulse"
        )

    def superuser_url(self, database: str = "postgres") -> str:
        """PostgreSQL's superuser: creating databases (the stack, tests of a plain database)."""
        return (
            f"postgresql://postgres:{self.p.secret('postgres-superuser')}"
            f"@127.0.0.1:{self.s.postgres_port}/{database}"
        )

    def install(self) -> tuple[Path, str | None]:
        """The PostgreSQL bin directory to run, and the TimescaleDB version it can load."""
        for root in (self.s.timescaledb_prefix, Path("/usr")):
            bin_dir = root / "lib" / "postgresql" / "15" / "bin"
            control = root / "share" / "postgresql" / "15" / "extension" / "timescaledb.control"
            if (bin_dir / "postgres").exists() and control.exists():
                return bin_dir, _control_version(control)
        return PG_BIN, None

    def backend(self) -> str:
        """What readings are stored in (`up`, `status`): TimescaleDB and its version, or not."""
        _, available = self.install()
        if self.p.pid(NAME):
            import psycopg

            try:
                with psycopg.connect(self.database_url(), connect_timeout=3) as conn:
                    row = conn.execute(
                        "SELECT (SELECT value FROM storage_info WHERE key = 'backend'),"
                        " (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')"
                    ).fetchone()
            except psycopg.Error:
                row = None
            if row and row[0] == "timescaledb":
                return f"TimescaleDB {row[1]}"
            if row and row[0] == "postgres":
                why = "database created without it" if available else "not installed"
                return f"plain PostgreSQL (TimescaleDB {why})"
        if available:
            return f"TimescaleDB {available} (installed)"
        return "plain PostgreSQL (TimescaleDB not installed: see deploy/install.sh)"

    def start(self) -> None:
        if self.p.pid(NAME):
            return
        data = self.data
        if not (data / "PG_VERSION").exists():
            self._initdb(data)
        backrest = self.backrest
        passphrase, created = backrest.passphrase()
        try:
            backrest.write_config()
            backup_problem = None
        except (StackError, OSError) as exc:
            # A NAS not mounted yet at boot: PostgreSQL starts all the same and keeps the WAL
            # it cannot archive (archive_command fails and is retried) until the repository is
            # back. Loudly.
            backup_problem = str(exc)
        bin_dir, timescaledb = self.install()
        extra: list[str] = []
        if timescaledb:
            extra = [
                "-c",
                "shared_preload_libraries=timescaledb",
                # Nothing leaves the town's server: no usage reports to Timescale.
                "-c",
                "timescaledb.telemetry_level=off",
                # Policies (refresh, compression, retention) run one at a time at most a few
                # per hour; 4 workers leave the rest of the machine's worker slots free.
                "-c",
                "timescaledb.max_background_workers=4",
            ]
        self.p.spawn(
            NAME,
            [
                str(bin_dir / "postgres"),
                *extra,
                "-D",
                str(data),
                "-c",
                f"port={self.s.postgres_port}",
                "-c",
                "listen_addresses=127.0.0.1",
                # TCP only: no socket files in a shared /var/run/postgresql.
                "-c",
                "unix_socket_directories=",
                "-c",
                "shared_buffers=256MB",
                # Rows are committed before Kafka offsets: they must really be on disk.
                "-c",
                "synchronous_commit=on",
                "-c",
                "max_connections=200",
                # Continuous archiving (pgBackRest): backups by default, docs/operations.md.
                *backrest.archive_options(),
            ],
            marker=str(data),
            user="postgres",
        )
        wait_port(self.s.postgres_port, timeout=self.s.start_timeout_s, what="postgres")
        if (data / "recovery.signal").exists():
            # Restored by pgBackRest: the stanza is checked against a cluster that writes.
            self.wait_promoted()
        self._ensure_database()
        try:
            if backup_problem is None:
                backrest.ensure_stanza()
        except StackError as exc:
            backup_problem = str(exc)
        if backup_problem is not None:
            # The stack still starts (its data matters more than its backup), loudly: WAL
            # piles up in pg_wal until archiving works again.
            log.warning("backups are not working: %s", backup_problem)
            print(f"WARNING: backups are not working: {backup_problem}")
        if created:
            self.new_backup_passphrase = passphrase

    def wait_promoted(self) -> None:
        """Wait until a restored cluster has replayed its WAL and accepts writes."""
        import psycopg

        def promoted() -> bool:
            try:
                with psycopg.connect(self.superuser_url(), connect_timeout=3) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            except psycopg.OperationalError:
                return False
            return row is not None and not row[0]

        wait_until(promoted, timeout=self.s.start_timeout_s * 5, what="postgres recovery")

    def stop(self) -> None:
        # SIGINT, the "fast" shutdown (it still checkpoints): SIGTERM would wait for every
        # client (the services' pools) to disconnect by itself.
        self.p.stop(NAME, sig=signal.SIGINT, timeout=60)

    def _initdb(self, data: Path) -> None:
        superuser_pw = self.p.secret("postgres-superuser")
        pwfile = data.parent / f".pwfile-{os.getpid()}"
        pwfile.write_text(superuser_pw + "\n")
        pw = pwd.getpwnam("postgres")
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        os.chmod(pwfile, 0o600)
        try:
            subprocess.run(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                user=pw.pw_uid,
                group=pw.pw_gid,
                extra_groups=[],
                capture_output=True,
                env=base_env(),
            )
        except subprocess.CalledProcessError as exc:
            raise StackError(f"initdb failed: {exc.stderr.decode()[-2000:]}") from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        admin = self.superuser_url()
        app_pw = self.p.secret("postgres-townpulse")
        wait_until(lambda: can_connect(admin), timeout=self.s.start_timeout_s, what="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'townpulse'").fetchone():
                conn.execute(
                    sql.SQL("CREATE ROLE townpulse LOGIN PASSWORD {}").format(sql.Literal(app_pw))
                )
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'townpulse'").fetchone():
                conn.execute("CREATE DATABASE townpulse OWNER townpulse")


def _control_version(control: Path) -> str | None:
    for line in control.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "default_version":
            return value.strip().strip("'")
    return None
