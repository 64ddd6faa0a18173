"""The local stack: real PostgreSQL, Apache Kafka (KRaft) and Mosquitto, then the services.

Everything lives under one run directory (`.run/` by default): data, logs, pid files, generated
secrets and `stack.env`. Processes are stopped by the pid they were started with, never by name,
because other processes share the machine.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("townpulse.stack")

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
KAFKA_LIB = DEPLOY / "kafka" / "target" / "lib"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DYNSEC_PLUGIN_CANDIDATES = (
    Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"),
    Path("/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so"),
    Path("/usr/lib/mosquitto_dynamic_security.so"),
)


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOWNPULSE_", frozen=True, extra="ignore")

    run_dir: Path = REPO / ".run"
    # Unusual ports: the machine may already run a PostgreSQL, a broker or a web app.
    postgres_port: int = 15432
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    mqtt_port: int = 11883
    # The TLS listener, which sensors use over the town's network; its CA is the stack's own.
    mqtts_port: int = 18883
    # Sensors reach the broker (TLS) over the network in a real town: set 0.0.0.0 there. The
    # local stack stays private.
    mqtt_bind: str = "127.0.0.1"
    # Plain MQTT carries device passwords in clear: loopback only (the services) unless a town
    # decides otherwise.
    mqtt_plain_bind: str = "127.0.0.1"
    # Extra names (DNS or IP) the broker's certificate is valid for, e.g. the town's host name.
    mqtt_tls_hosts: list[str] = []
    # Where deploy/build-timescaledb.sh installs TimescaleDB, in a private copy of PostgreSQL 15.
    timescaledb_prefix: Path = Path("/opt/townpulse/pg15-timescaledb")
    gateway_port: int = 18101
    storage_port: int = 18102
    api_port: int = 18000
    alerts_port: int = 18105
    energy_port: int = 18103
    waste_port: int = 18104
    traffic_port: int = 18106
    kafka_heap: str = "768m"
    gateways: int = 1
    start_timeout_s: float = 120.0


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port_setting: str
    # The identity a process needs beyond the common settings (MQTT user, instance id).
    mqtt_user: str | None = None
    # First path segments under /v1/ that the operator API forwards to this service.
    routes: tuple[str, ...] = ()


SERVICES = (
    ServiceSpec("gateway", "services.gateway", "gateway_port", mqtt_user="gateway"),
    ServiceSpec("storage", "services.storage", "storage_port"),
    ServiceSpec("api", "services.api", "api_port", mqtt_user="admin"),
    ServiceSpec("energy", "services.energy", "energy_port", routes=("energy",)),
    ServiceSpec("waste", "services.waste", "waste_port", routes=("waste",)),
    ServiceSpec("traffic", "services.traffic", "traffic_port", routes=("traffic",)),
    ServiceSpec(
        "alerts", "services.alerts", "alerts_port", routes=("alerts", "alert-rules", "webhooks")
    ),
)
INFRA = ("postgres", "kafka", "mosquitto")


_CHILDREN: list[subprocess.Popen[bytes]] = []


class StackError(RuntimeError):
    pass


class Stack:
    """Starts, stops and describes the local stack."""

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.s = settings or StackSettings()
        self.run = self.s.run_dir.resolve()
        self.pids = self.run / "pids"
        self.logs = self.run / "logs"
        self.secrets_dir = self.run / "secrets"

    # ---- paths and secrets ----------------------------------------------------------------

    @property
    def admin_key_file(self) -> Path:
        return self.run / "admin-api-key"

    @property
    def stack_env_file(self) -> Path:
        return self.run / "stack.env"

    def _secret(self, name: str) -> str:
        """A generated secret, created once and kept in a 0600 file."""
        path = self.secrets_dir / name
        if not path.exists():
            self.secrets_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.secrets_dir, 0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def database_url(self) -> str:
        return (
            f"postgresql://townpulse:{self._secret('postgres-townpulse')}"
            f"@127.0.0.1:{self.s.postgres_port}/townpulse"
        )

    def superuser_url(self, database: str = "postgres") -> str:
        """PostgreSQL's superuser: creating databases (the stack, tests of a plain database)."""
        return (
            f"postgresql://postgres:{self._secret('postgres-superuser')}"
            f"@127.0.0.1:{self.s.postgres_port}/{database}"
        )

    def _data_dir(self, name: str, owner: str) -> Path:
        """A data directory owned by `owner`, who must be able to reach it.

        Daemons refuse to run as root, so they run as their own user; if the run directory sits
        below a folder that user cannot enter, fall back to a private folder in /var/lib.
        """
        preferred = self.run / "data" / name
        user = pwd.getpwnam(owner)
        if _reachable_by(preferred.parent, user):
            path = preferred
        else:
            tag = uuid.uuid5(uuid.NAMESPACE_URL, str(self.run)).hex[:12]
            path = Path("/var/lib/townpulse") / tag / name
            log.info("%s cannot reach %s; using %s", owner, preferred, path)
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(path, 0o700)
        return path

    # ---- processes ----------------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The pid of a running component, if its pid file points at a live process of ours."""
        try:
            pid_text, _, marker = self._pid_file(name).read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        # A recycled pid belongs to someone else: the marker we started it with must be there.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        if marker and marker not in cmdline:
            return None
        return pid if _alive(pid) else None

    def _spawn(
        self,
        name: str,
        argv: list[str],
        *,
        marker: str,
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
        log_name: str | None = None,
    ) -> int:
        self.pids.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        logf = open(self.logs / f"{log_name or name}.log", "ab")  # noqa: SIM115 - to the child
        kwargs: dict[str, object] = {}
        if user:
            pw = pwd.getpwnam(user)
            kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        proc = subprocess.Popen(
            argv,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**_base_env(), **(env or {})},
            cwd=cwd or REPO,
            # Its own session: a Ctrl-C in the terminal that ran `make up` does not reach it.
            start_new_session=True,
            **kwargs,  # type: ignore[call-overload]
        )
        logf.close()
        # The child outlives this process (its own session); keep the Popen object so that it
        # is not collected (and warned about) while the child runs.
        _CHILDREN.append(proc)
        self._pid_file(name).write_text(f"{proc.pid} {marker}\n")
        return int(proc.pid)

    def _stop(
        self, name: str, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 30
    ) -> None:
        pid = self.pid(name)
        if pid is None:
            self._pid_file(name).unlink(missing_ok=True)
            return
        log.info("stopping %s (pid %d)", name, pid)
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid(name) is not None:
            _reap(pid)
            time.sleep(0.1)
        if self.pid(name) is not None:
            log.warning("%s did not stop in %.0f s: SIGKILL", name, timeout)
            os.kill(pid, signal.SIGKILL)
            _wait_until(lambda: self.pid(name) is None, timeout=10, what=f"{name} to die")
        self._pid_file(name).unlink(missing_ok=True)

    def stop(self, name: str) -> None:
        """Stop one component gracefully (SIGTERM, then SIGKILL after 30 s).

        PostgreSQL gets SIGINT, its "fast" shutdown: SIGTERM would wait for every client (the
        services' pools) to disconnect by itself.
        """
        if name == "postgres":
            self._stop(name, sig=signal.SIGINT, timeout=60)
        else:
            self._stop(name)

    def stop_service(self, name: str) -> None:
        """Stop a service and its keeper (which would otherwise start it again)."""
        self._stop(_keeper(name), timeout=40)
        # Left by a keeper that was killed, or started before keepers existed.
        self._stop(name)

    def kill(self, name: str) -> None:
        """SIGKILL a component (tests of crash safety use this)."""
        pid = self.pid(name)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            # Its keeper (if any) starts a new one with another pid: wait for this one only.
            _wait_until(lambda: not _alive(pid), timeout=10, what=f"{name} to die")

    # ---- PostgreSQL ----------------------------------------------------------------------------

    def postgres_install(self) -> tuple[Path, str | None]:
        """The PostgreSQL bin directory to run, and the TimescaleDB version it can load."""
        for root in (self.s.timescaledb_prefix, Path("/usr")):
            bin_dir = root / "lib" / "postgresql" / "15" / "bin"
            control = root / "share" / "postgresql" / "15" / "extension" / "timescaledb.control"
            if (bin_dir / "postgres").exists() and control.exists():
                return bin_dir, _control_version(control)
        return PG_BIN, None

    def storage_backend(self) -> str:
        """What readings are stored in (`up`, `status`): TimescaleDB and its version, or not."""
        _, available = self.postgres_install()
        if self.pid("postgres"):
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

    def start_postgres(self) -> None:
        if self.pid("postgres"):
            return
        data = self._data_dir("postgres", "postgres")
        if not (data / "PG_VERSION").exists():
            self._initdb(data)
        bin_dir, timescaledb = self.postgres_install()
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
        self._spawn(
            "postgres",
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
            ],
            marker=str(data),
            user="postgres",
        )
        _wait_port(self.s.postgres_port, timeout=self.s.start_timeout_s, what="postgres")
        self._ensure_database()

    def _initdb(self, data: Path) -> None:
        superuser_pw = self._secret("postgres-superuser")
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
                env=_base_env(),
            )
        except subprocess.CalledProcessError as exc:
            raise StackError(f"initdb failed: {exc.stderr.decode()[-2000:]}") from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        admin = self.superuser_url()
        app_pw = self._secret("postgres-townpulse")
        _wait_until(lambda: _can_connect(admin), timeout=self.s.start_timeout_s, what="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'townpulse'").fetchone():
                conn.execute(
                    sql.SQL("CREATE ROLE townpulse LOGIN PASSWORD {}").format(sql.Literal(app_pw))
                )
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'townpulse'").fetchone():
                conn.execute("CREATE DATABASE townpulse OWNER townpulse")

    # ---- Kafka ---------------------------------------------------------------------------------

    def start_kafka(self) -> None:
        if self.pid("kafka"):
            return
        if not KAFKA_LIB.is_dir():
            raise StackError(f"Kafka jars missing in {KAFKA_LIB}: run `make install`")
        data = self.run / "data" / "kafka"
        data.mkdir(parents=True, exist_ok=True)
        props = self.run / "kafka" / "server.properties"
        props.parent.mkdir(parents=True, exist_ok=True)
        props.write_text(
            (DEPLOY / "kafka" / "server.properties.tmpl")
            .read_text()
            .format(
                host="127.0.0.1",
                port=self.s.kafka_port,
                controller_port=self.s.kafka_controller_port,
                data_dir=data,
            )
        )
        java = shutil.which("java") or "java"
        classpath = f"{KAFKA_LIB}/*"
        log4j = f"-Dlog4j2.configurationFile={DEPLOY / 'kafka' / 'log4j2.yaml'}"
        if not (data / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            subprocess.run(
                [
                    java,
                    log4j,
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                ],
                check=True,
                capture_output=True,
            )
        self._spawn(
            "kafka",
            [
                java,
                f"-Xms{self.s.kafka_heap}",
                f"-Xmx{self.s.kafka_heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                log4j,
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ],
            marker=str(props),
        )
        _wait_port(self.s.kafka_port, timeout=self.s.start_timeout_s, what="kafka")

    # ---- Mosquitto -----------------------------------------------------------------------------

    def start_mosquitto(self) -> None:
        if self.pid("mosquitto"):
            return
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        plugin = next((p for p in DYNSEC_PLUGIN_CANDIDATES if p.exists()), None)
        if plugin is None:
            raise StackError("mosquitto's dynamic security plugin is missing: run `make install`")
        data = self._data_dir("mosquitto", "mosquitto")
        dynsec = data / "dynamic-security.json"
        if not dynsec.exists():
            subprocess.run(
                [
                    "mosquitto_ctrl",
                    "dynsec",
                    "init",
                    str(dynsec),
                    "admin",
                    self._secret("mqtt-admin"),
                ],
                check=True,
                capture_output=True,
            )
            pw = pwd.getpwnam("mosquitto")
            os.chown(dynsec, pw.pw_uid, pw.pw_gid)
            os.chmod(dynsec, 0o600)
        conf = data / "mosquitto.conf"
        conf.write_text(
            (DEPLOY / "mosquitto" / "mosquitto.conf.tmpl")
            .read_text()
            .format(
                port=self.s.mqtt_port,
                plain_bind=self.s.mqtt_plain_bind,
                tls_port=self.s.mqtts_port,
                bind=self.s.mqtt_bind,
                dynsec_plugin=plugin,
                data_dir=data,
                **self._mqtt_tls(data),
            )
        )
        # Started as root, mosquitto drops to the `mosquitto` user, which owns `data`.
        self._spawn("mosquitto", [mosquitto, "-c", str(conf)], marker=str(conf))
        _wait_port(self.s.mqtt_port, timeout=self.s.start_timeout_s, what="mosquitto")
        _wait_port(self.s.mqtts_port, timeout=self.s.start_timeout_s, what="mosquitto (TLS)")

    @property
    def ca_cert_file(self) -> Path:
        return self.run / "tls" / "ca.crt"

    def _mqtt_tls(self, data: Path) -> dict[str, Path]:
        """The CA (made once) and a broker certificate for the names devices may dial."""
        from townpulse import tls

        hosts = ["localhost", "127.0.0.1", socket.gethostname(), *self.s.mqtt_tls_hosts]
        if self.s.mqtt_bind not in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
            hosts.append(self.s.mqtt_bind)
        files = tls.ensure_server_cert(
            ca_cert_path=self.ca_cert_file,
            ca_key_path=self.secrets_dir / "mqtt-ca.key",
            out_dir=data / "tls",
            hosts=hosts,
        )
        # Mosquitto reads them after dropping to its own user.
        pw = pwd.getpwnam("mosquitto")
        for path in (files.server_cert.parent, files.server_cert, files.server_key):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(self.ca_cert_file.parent, 0o755)  # noqa: S103 - the CA certificate is public
        return {
            "cafile": files.ca_cert,
            "certfile": files.server_cert,
            "keyfile": files.server_key,
        }

    # ---- bootstrap -----------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Migrations, Kafka topics, MQTT identities, the first admin API key. Idempotent."""
        from townpulse import bootstrap

        created = bootstrap.run_all(
            database_url=self.database_url(),
            kafka_bootstrap=f"127.0.0.1:{self.s.kafka_port}",
            mqtt_host="127.0.0.1",
            mqtt_port=self.s.mqtt_port,
            mqtt_admin_password=self._secret("mqtt-admin"),
            mqtt_gateway_password=self._secret("mqtt-gateway"),
            admin_key_file=self.admin_key_file,
        )
        if created:
            print(f"Admin API key created: {self.admin_key_file} (mode 0600, shown nowhere else)")

    # ---- services ------------------------------------------------------------------------------

    def service_env(self, spec: ServiceSpec, *, instance: int = 1) -> dict[str, str]:
        env = {
            "TOWNPULSE_DATABASE_URL": self.database_url(),
            "TOWNPULSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.s.kafka_port}",
            "TOWNPULSE_MQTT_HOST": "127.0.0.1",
            "TOWNPULSE_MQTT_PORT": str(self.s.mqtt_port),
            "TOWNPULSE_HTTP_HOST": "127.0.0.1",
            "TOWNPULSE_HTTP_PORT": str(self._port(spec, instance)),
            "TOWNPULSE_INSTANCE": f"{spec.name}-{instance}",
        }
        if spec.mqtt_user:
            env["TOWNPULSE_MQTT_USERNAME"] = spec.mqtt_user
            env["TOWNPULSE_MQTT_PASSWORD"] = self._secret(f"mqtt-{spec.mqtt_user}")
        if spec.name == "api":
            env["TOWNPULSE_UPSTREAMS"] = json.dumps(self.upstreams())
            env["TOWNPULSE_MQTT_TLS_PORT"] = str(self.s.mqtts_port)
            env["TOWNPULSE_MQTT_CA_FILE"] = str(self.ca_cert_file)
        return env

    def upstreams(self) -> dict[str, str]:
        """Services whose routes the operator API forwards (`/v1/<segment>/...`)."""
        return {
            route: f"http://127.0.0.1:{self._port(spec)}"
            for spec in SERVICES
            for route in spec.routes
        }

    def _port(self, spec: ServiceSpec, instance: int = 1) -> int:
        base: int = getattr(self.s, spec.port_setting)
        # Extra gateway instances listen on the ports after the first one's.
        return base + 10 * (instance - 1)

    def _instances(self, spec: ServiceSpec) -> list[str]:
        n = self.s.gateways if spec.name == "gateway" else 1
        names = [spec.name if i == 1 else f"{spec.name}-{i}" for i in range(1, n + 1)]
        # Extra instances started by hand (or by a test) are stopped with the rest.
        extra = sorted(
            p.stem for p in self.pids.glob(f"{spec.name}-*.pid") if not p.stem.endswith(".keeper")
        )
        return names + [e for e in extra if e not in names]

    def start_service(self, spec: ServiceSpec, *, instance: int = 1) -> None:
        """Start a service under its keeper, which restarts it whenever it exits."""
        name = spec.name if instance == 1 else f"{spec.name}-{instance}"
        if self.pid(_keeper(name)) or self.pid(name):
            return
        self.pids.mkdir(parents=True, exist_ok=True)
        self._spawn(
            _keeper(name),
            [
                sys.executable,
                "-m",
                "townpulse.keeper",
                name,
                str(self.pids),
                spec.module,
                "--",
                sys.executable,
                "-m",
                spec.module,
            ],
            marker=f"townpulse.keeper {name}",
            env=self.service_env(spec, instance=instance),
            log_name=name,
        )

    def restarts(self, name: str) -> dict[str, object]:
        """What the keeper of a service says: restarts, last exit status, state."""
        try:
            state: dict[str, object] = json.loads((self.pids / f"{name}.keeper.json").read_text())
        except (OSError, ValueError):
            return {}
        return state

    def wait_healthy(self, spec: ServiceSpec, *, instance: int = 1) -> None:
        url = f"http://127.0.0.1:{self._port(spec, instance)}/readyz"
        name = spec.name if instance == 1 else f"{spec.name}-{instance}"
        keeper = self.pid(_keeper(name))
        _wait_until(
            lambda: _http_ok(url),
            timeout=self.s.start_timeout_s,
            what=f"{name} to be ready ({url}); see {self.logs / (name + '.log')}",
            # The keeper restarts a service that exits; only its own death is final.
            give_up=(lambda: not _alive(keeper)) if keeper else None,
        )

    def service(self, name: str) -> tuple[ServiceSpec, int]:
        """The spec and instance number of `energy` (1) or `energy-2` (2)."""
        base, _, number = name.partition("-")
        spec = next(s for s in SERVICES if s.name in (name, base))
        return spec, int(number) if number.isdigit() and spec.name == base else 1

    def restart(self, name: str) -> None:
        """Stop a running service gracefully and start it again."""
        self.stop_service(name)
        self.restart_service(name)

    def restart_service(self, name: str) -> None:
        """Start a service (or an extra instance, `energy-2`) and wait until it is ready."""
        spec, instance = self.service(name)
        self.start_service(spec, instance=instance)
        self.wait_healthy(spec, instance=instance)

    # ---- whole stack -------------------------------------------------------------------------

    def up(self) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        # Others may traverse (daemons running as their own users reach their data), not list.
        os.chmod(self.run, 0o711)  # noqa: S103 - execute only, no read: see above
        self.start_postgres()
        self.start_kafka()
        self.start_mosquitto()
        self.bootstrap()
        for spec in SERVICES:
            for i in range(1, (self.s.gateways if spec.name == "gateway" else 1) + 1):
                self.start_service(spec, instance=i)
        for spec in SERVICES:
            for i in range(1, (self.s.gateways if spec.name == "gateway" else 1) + 1):
                self.wait_healthy(spec, instance=i)
        self.write_stack_env()

    def down(self) -> None:
        # Producers of data first, so that nothing is left half-way when the broker goes.
        self._stop("simulator")
        for spec in SERVICES:
            for name in reversed(self._instances(spec)):
                self.stop_service(name)
        self._stop("mosquitto")
        self._stop("kafka", timeout=60)
        # SIGINT: PostgreSQL's "fast" shutdown, which still checkpoints.
        self.stop("postgres")

    def write_stack_env(self) -> None:
        values = {
            "MQTT_HOST": "127.0.0.1",
            "MQTT_PORT": str(self.s.mqtt_port),
            "MQTTS_PORT": str(self.s.mqtts_port),
            "MQTT_CA_FILE": str(self.ca_cert_file),
            "KAFKA_BOOTSTRAP": f"127.0.0.1:{self.s.kafka_port}",
            "DATABASE_URL": self.database_url(),
            "API_URL": f"http://127.0.0.1:{self.s.api_port}",
            "ADMIN_API_KEY_FILE": str(self.admin_key_file),
            "TOWNPULSE_RUN_DIR": str(self.run),
        }
        for spec in SERVICES:
            values[f"{spec.name.upper()}_URL"] = f"http://127.0.0.1:{self._port(spec)}"
        # It holds the database password: readable by the stack's owner only.
        fd = os.open(self.stack_env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in values.items())

    def status(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        ports = {
            "postgres": self.s.postgres_port,
            "kafka": self.s.kafka_port,
            "mosquitto": self.s.mqtt_port,
        }
        for name in INFRA:
            pid = self.pid(name)
            rows.append(
                {"name": name, "state": "up" if pid else "down", "pid": pid, "port": ports[name]}
            )
        for spec in SERVICES:
            for i, name in enumerate(self._instances(spec), start=1):
                pid = self.pid(name)
                port = self._port(spec, i)
                ready = bool(pid) and _http_ok(f"http://127.0.0.1:{port}/readyz")
                kept = self.restarts(name) if self.pid(_keeper(name)) else {}
                state = "up" if ready else ("starting" if pid else "down")
                if kept.get("state") == "backoff":
                    state = f"restarting in {kept.get('next_start_in_s', 0):.0f} s"
                rows.append(
                    {
                        "name": name,
                        "state": state,
                        "pid": pid,
                        "port": port,
                        "restarts": kept.get("restarts", 0),
                    }
                )
        pid = self.pid("simulator")
        rows.append(
            {"name": "simulator", "state": "up" if pid else "down", "pid": pid, "port": None}
        )
        return rows

    def start_simulator(self) -> None:
        from townpulse.simulator.cli import LIVING_TOWN_ARGS

        if self.pid("simulator"):
            return
        self._spawn(
            "simulator",
            [sys.executable, "-m", "townpulse", "simulate", *LIVING_TOWN_ARGS],
            marker="townpulse simulate",
            env=read_env_file(self.stack_env_file),
        )


# ---- helpers ------------------------------------------------------------------------------------


def _keeper(name: str) -> str:
    return f"{name}.keeper"


def _base_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "JAVA_HOME", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("TOWNPULSE_")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    env["HOME"] = "/tmp"  # noqa: S108 - daemons running as their own users have no home here
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _control_version(control: Path) -> str | None:
    for line in control.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "default_version":
            return value.strip().strip("'")
    return None


def read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` can traverse every directory down to `path` (others' execute bit)."""
    path.mkdir(parents=True, exist_ok=True)
    for p in [path, *path.parents]:
        st = p.stat()
        if st.st_uid == user.pw_uid:
            continue
        if not st.st_mode & 0o001:
            if p == path:
                os.chmod(p, st.st_mode | 0o001)
                continue
            return False
    return True


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_until(
    cond: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    give_up: Callable[[], bool] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if give_up and give_up():
            raise StackError(f"gave up waiting for {what}: the process exited")
        time.sleep(0.2)
    raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, *, timeout: float, what: str) -> None:
    _wait_until(lambda: _port_open(port), timeout=timeout, what=f"{what} on port {port}")


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _can_connect(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False
