"""PostgreSQL (with TimescaleDB when it is installed), run as its own user under the run dir."""

from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
from pathlib import Path

from townpulse.stack.config import DATABASE_ROLES, PG_BIN, StackError, StackSettings
from townpulse.stack.pgbackrest import PgBackRest
from townpulse.stack.processes import (
    Keeping,
    Launch,
    Processes,
    base_env,
    can_connect,
    wait_port,
    wait_until,
)

log = logging.getLogger("townpulse.stack")

NAME = "postgres"
# Kept running like the services (townpulse/keeper.py). Stopped by SIGINT, the "fast" shutdown
# (it still checkpoints): SIGTERM would wait for every client (the services' pools) to
# disconnect by itself.
KEEPING = Keeping(stop_signal=signal.SIGINT, stop_timeout_s=60, max_delay_s=10)
# Written by deploy/install.sh when it could neither install nor build TimescaleDB: the reason.
FALLBACK_FILE = "timescaledb-fallback"


class Postgres:
    def __init__(self, procs: Processes, settings: StackSettings) -> None:
        self.p = procs
        self.s = settings
        # Set by `start` when it generated the backup passphrase: `up` shows it once.
        self.new_backup_passphrase: str | None = None
        # Why pgBackRest could not be configured by `prepare` (warned at start), if so.
        self.backup_problem: str | None = None

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

    def role_url(self, role: str) -> str:
        """A service's own role (shared/migrations/versions/0009_roles.py), its own password."""
        return (
            f"postgresql://{role}:{self.p.secret(f'postgres-{role}')}"
            f"@127.0.0.1:{self.s.postgres_port}/townpulse"
        )

    def role_passwords(self) -> dict[str, str]:
        """Every service role's password (generated once under .run/secrets)."""
        return {role: self.p.secret(f"postgres-{role}") for role in DATABASE_ROLES}

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
                why = "database created without it" if available else self._why_not()
                return f"WARNING: plain PostgreSQL (TimescaleDB {why})"
        if available:
            return f"TimescaleDB {available} (installed)"
        return f"WARNING: plain PostgreSQL (TimescaleDB {self._why_not()})"

    def _why_not(self) -> str:
        """Why TimescaleDB is missing: what deploy/install.sh could not do, as it recorded it.
        `up` and `status` say it each time, as a warning: the design's storage is TimescaleDB."""
        try:
            reason = (self.p.run / FALLBACK_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            reason = ""
        return f"not installed: {reason or 'see deploy/install.sh'}"

    def prepare(self) -> None:
        """Its data directory, initialised once (as root: the directory goes to `postgres`),
        and pgBackRest's configuration (continuous archiving: docs/operations.md)."""
        data = self.p.data_dir("postgres", "postgres")
        if not (data / "PG_VERSION").exists():
            self._initdb(data)
        backrest = self.backrest
        passphrase, created = backrest.passphrase()
        if created:
            self.new_backup_passphrase = passphrase
        try:
            backrest.write_config()
            self.backup_problem = None
        except (StackError, OSError) as exc:
            # A NAS not mounted yet at boot: PostgreSQL starts all the same and keeps the WAL
            # it cannot archive (archive_command fails and is retried) until the repository is
            # back. Loudly.
            self.backup_problem = str(exc)

    def launch(self) -> Launch:
        """The server's command line, run as the `postgres` user (local stack and systemd)."""
        data = self.p.data_dir("postgres", "postgres", create=False)
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
        return Launch(
            argv=[
                str(bin_dir / "postgres"),
                *extra,
                "-D",
                str(data),
                "-c",
                f"port={self.s.postgres_port}",
                "-c",
                "listen_addresses=127.0.0.1",
                # An error's DETAIL ("Key (device_id)=(meter-12) already exists") and the
                # statement would keep device ids in the log after their erasure.
                "-c",
                "log_error_verbosity=terse",
                "-c",
                "log_min_error_statement=panic",
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
                *self.backrest.archive_options(),
            ],
            marker=str(data),
            user="postgres",
        )

    def start(self) -> None:
        if self.p.pid(NAME):
            return
        self.prepare()
        self.p.keep(NAME, self.launch(), KEEPING)
        self.wait_ready()
        self.ensure_database()
        self.ensure_backups()

    def wait_ready(self) -> None:
        wait_port(self.s.postgres_port, timeout=self.s.start_timeout_s, what="postgres")
        if (self.data / "recovery.signal").exists():
            # Restored by pgBackRest: the stanza is checked against a cluster that writes.
            self.wait_promoted()

    def ensure_backups(self) -> None:
        """pgBackRest's stanza, once the cluster writes; a problem is a warning, not a stop:
        the town's data matters more than its backup, and WAL waits in pg_wal meanwhile."""
        problem = self.backup_problem
        if problem is None:
            try:
                self.backrest.ensure_stanza()
            except StackError as exc:
                problem = str(exc)
        if problem is not None:
            log.warning("backups are not working: %s", problem)
            print(f"WARNING: backups are not working: {problem}")

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
        self.p.stop_kept(NAME, KEEPING)

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

    def ensure_database(self) -> None:
        """The application's role and database, made once the server runs."""
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
            # The owner's migrations create the services' roles (0009); it is used by nothing
            # else than migrations, the bootstrap and the operator's own tools.
            conn.execute("ALTER ROLE townpulse CREATEROLE")
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'townpulse'").fetchone():
                conn.execute("CREATE DATABASE townpulse OWNER townpulse")


def _control_version(control: Path) -> str | None:
    for line in control.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "default_version":
            return value.strip().strip("'")
    return None
