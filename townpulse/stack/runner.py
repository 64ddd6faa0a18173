"""`Stack`: the whole local stack, up and down, and each component by name."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from townpulse.stack.config import (
    INFRA,
    SERVICES,
    WATCH_ROLE,
    ServiceSpec,
    StackError,
    StackSettings,
)
from townpulse.stack.kafka import Kafka
from townpulse.stack.mosquitto import Mosquitto
from townpulse.stack.postgres import Postgres
from townpulse.stack.processes import Launch, Processes, read_env_file
from townpulse.stack.services import Services, keeper

# The early warnings' process (townpulse/watch/): kept like a service, but serves no HTTP.
WATCH = "watch"


class Stack:
    """Starts, stops and describes the local stack."""

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.s = settings or StackSettings()
        self.procs = Processes(self.s.run_dir)
        self.run, self.pids, self.logs = self.procs.run, self.procs.pids, self.procs.logs
        self.secrets_dir = self.procs.secrets_dir
        self.postgres = Postgres(self.procs, self.s)
        self.kafka = Kafka(self.procs, self.s)
        self.mosquitto = Mosquitto(self.procs, self.s)
        self.services = Services(
            self.procs,
            self.s,
            database_url=self.postgres.role_url,
            ca_cert_file=self.mosquitto.ca_cert_file,
        )

    # ---- paths and addresses ----------------------------------------------------------------

    @property
    def admin_key_file(self) -> Path:
        return self.run / "admin-api-key"

    @property
    def stack_env_file(self) -> Path:
        return self.run / "stack.env"

    @property
    def ca_cert_file(self) -> Path:
        return self.mosquitto.ca_cert_file

    def database_url(self) -> str:
        return self.postgres.database_url()

    def superuser_url(self, database: str = "postgres") -> str:
        return self.postgres.superuser_url(database)

    def storage_backend(self) -> str:
        return self.postgres.backend()

    def mqtt_broker(self) -> str:
        return self.mosquitto.describe()

    def upstreams(self) -> dict[str, str]:
        return self.services.upstreams()

    # ---- components by name -----------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        return self.procs.pid(name)

    def start_postgres(self) -> None:
        self.postgres.start()

    def start_kafka(self) -> None:
        self.kafka.start()

    def start_mosquitto(self) -> None:
        self.mosquitto.start()

    def stop(self, name: str) -> None:
        """Stop one component gracefully: infrastructure by its own rule, a service with its
        keeper, anything else (the simulator) with SIGTERM."""
        infra: dict[str, Postgres | Kafka | Mosquitto] = {
            "postgres": self.postgres,
            "kafka": self.kafka,
            "mosquitto": self.mosquitto,
        }
        if name in infra:
            infra[name].stop()
        elif name == WATCH or name.partition("-")[0] in {s.name for s in SERVICES}:
            self.services.stop(name)
        else:
            self.procs.stop(name)

    def stop_service(self, name: str) -> None:
        self.services.stop(name)

    def kill(self, name: str) -> None:
        """SIGKILL a component (tests of crash safety use this); a keeper restarts services."""
        self.procs.kill(self.services.process(name))

    def start_service(self, spec: ServiceSpec, *, instance: int = 1) -> None:
        self.services.start(spec, instance=instance)

    def wait_healthy(self, spec: ServiceSpec, *, instance: int = 1) -> None:
        self.services.wait_healthy(spec, instance=instance)

    def restart(self, name: str) -> None:
        """Stop a running service (or the watch) gracefully and start it again."""
        self.services.stop(name)
        if name == WATCH:
            self.start_watch()
        else:
            self.restart_service(name)

    def restart_service(self, name: str) -> None:
        """Start a service (or an extra instance, `energy-2`) and wait until it is ready."""
        spec, instance = self.services.resolve(name)
        self.services.start(spec, instance=instance)
        self.services.wait_healthy(spec, instance=instance)

    # ---- whole stack -------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Migrations, Kafka topics, MQTT identities, the first admin API key. Idempotent."""
        from shared.townzone import TownZoneError
        from townpulse import bootstrap

        try:
            created = bootstrap.run_all(
                database_url=self.database_url(),
                kafka_bootstrap=self.kafka.bootstrap,
                mqtt_host="127.0.0.1",
                mqtt_port=self.s.mqtt_port,
                mqtt_admin_password=self.procs.secret("mqtt-admin"),
                mqtt_gateway_password=self.procs.secret("mqtt-gateway"),
                admin_key_file=self.admin_key_file,
                gateways=self.s.gateways,
                role_passwords=self.postgres.role_passwords(),
            )
        except TownZoneError as exc:  # an unknown zone, or one the database refuses: no traceback
            raise StackError(str(exc)) from exc
        if created:
            print(f"Admin API key created: {self.admin_key_file} (mode 0600, shown nowhere else)")
        passphrase = self.postgres.new_backup_passphrase
        if passphrase:
            self.postgres.new_backup_passphrase = None
            print(
                f"Backup passphrase (shown once): {passphrase}\n"
                "  Backups are encrypted with it and cannot be restored without it. Keep a copy"
                " away from this machine (a password manager, a sealed envelope).\n"
                f"  Backups go to {self.s.backup_dir} (TOWNPULSE_BACKUP_DIR): another disk or"
                " a NAS, never this machine's own disk."
            )

    def up(self) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        # Others may traverse (daemons running as their own users reach their data), not list.
        os.chmod(self.run, 0o711)  # noqa: S103 - execute only, no read: see above
        self.postgres.start()
        self.kafka.start()
        self.mosquitto.start()
        self.bootstrap()
        for spec in SERVICES:
            for i in range(1, self.services.counts(spec) + 1):
                self.services.start(spec, instance=i)
        for spec in SERVICES:
            for i in range(1, self.services.counts(spec) + 1):
                self.services.wait_healthy(spec, instance=i)
        self.write_stack_env()
        self.start_watch()

    def watch_launch(self) -> Launch:
        """The early warnings' process (local stack and systemd)."""
        return Launch(
            argv=[sys.executable, "-m", "townpulse.watch"],
            marker="townpulse.watch",
            env={
                "TOWNPULSE_RUN_DIR": str(self.run),
                "TOWNPULSE_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
                "TOWNPULSE_MQTTS_PORT": str(self.s.mqtts_port),
                # It samples the platform's footprint into the database, as its own role.
                "TOWNPULSE_DATABASE_URL": self.postgres.role_url(WATCH_ROLE),
            },
        )

    def start_watch(self) -> None:
        self.services.keep(WATCH, self.watch_launch())

    def down(self) -> None:
        # Producers of data first, so that nothing is left half-way when the broker goes.
        self.procs.stop("simulator")
        self.services.stop(WATCH)
        for spec in SERVICES:
            for name in reversed(self.services.instances(spec)):
                self.services.stop(name)
        self.mosquitto.stop()
        self.kafka.stop()
        self.postgres.stop()

    def write_stack_env(self) -> None:
        values = {
            "MQTT_HOST": "127.0.0.1",
            "MQTT_PORT": str(self.s.mqtt_port),
            "MQTTS_PORT": str(self.s.mqtts_port),
            "MQTT_CA_FILE": str(self.ca_cert_file),
            "KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "DATABASE_URL": self.database_url(),
            "API_URL": self.services.api_url(),
            # The same API over HTTPS (what operators on other machines use), and the CA that
            # verifies it: the stack's own, as for MQTT.
            "API_HTTPS_URL": self.services.api_url(https=True),
            "API_CA_FILE": str(self.ca_cert_file),
            "ADMIN_API_KEY_FILE": str(self.admin_key_file),
            "TOWNPULSE_RUN_DIR": str(self.run),
            # What the gateway takes: the simulator sizes its backfill to it (max_backfill).
            "TOWNPULSE_MAX_AGE_S": str(self.s.max_age_s),
        }
        for spec in SERVICES:
            values[f"{spec.name.upper()}_URL"] = f"http://127.0.0.1:{self.services.port(spec)}"
        # It holds the database password: readable by the stack's owner only.
        fd = os.open(self.stack_env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in values.items())

    def status(self) -> list[dict[str, object]]:
        ports = {
            "postgres": self.s.postgres_port,
            "kafka": self.s.kafka_port,
            "mosquitto": self.s.mqtt_port,
        }
        rows: list[dict[str, object]] = []
        for name in INFRA:
            pid = self.pid(name)
            kept = self.services.restarts(name) if self.pid(keeper(name)) else {}
            state = "up" if pid else "down"
            if kept.get("state") == "backoff":
                state = f"restarting in {kept.get('next_start_in_s', 0):.0f} s"
            rows.append(
                {
                    "name": name,
                    "state": state,
                    "pid": pid,
                    "port": ports[name],
                    "restarts": kept.get("restarts", 0),
                }
            )
        rows += self.services.status()
        pid = self.pid(WATCH)
        kept = self.services.restarts(WATCH) if self.pid(keeper(WATCH)) else {}
        rows.append(
            {
                "name": WATCH,
                "state": "up" if pid else "down",
                "pid": pid,
                "port": None,
                "restarts": kept.get("restarts", 0),
            }
        )
        pid = self.pid("simulator")
        rows.append(
            {"name": "simulator", "state": "up" if pid else "down", "pid": pid, "port": None}
        )
        return rows

    def simulator_launch(self) -> Launch:
        """The living town's simulator (local stack, and systemd with `--sim`)."""
        from townpulse.simulator.cli import LIVING_TOWN_ARGS

        env = read_env_file(self.stack_env_file)
        # Its network server pushes to the gateway on this host directly: forwarded by the API,
        # each of the backfill's 78,000 uplinks went through two web services, and the API's
        # forwarding bounded the backfill (bench/first_run.py, README "first run").
        ingest = ["--ingest-url", env["GATEWAY_URL"]] if "GATEWAY_URL" in env else []
        return Launch(
            argv=[sys.executable, "-m", "townpulse", "simulate", *LIVING_TOWN_ARGS, *ingest],
            marker="townpulse simulate",
            env=env,
        )

    def start_simulator(self) -> None:
        if self.pid("simulator"):
            return
        self.procs.spawn_launch(self.simulator_launch(), name="simulator")
