"""The services, each under a keeper (townpulse/keeper.py) that restarts it when it exits."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shared.mqtt_admin import gateway_username
from townpulse.stack.config import (
    COMPACT_MEMBERS,
    COMPACT_PROCESS,
    KEYS,
    MAINTENANCE_ROLE,
    SERVICES,
    ServiceSpec,
    StackSettings,
    member_env_var,
)
from townpulse.stack.processes import Launch, Processes, alive, http_ok, keeper, wait_until

if TYPE_CHECKING:
    from townpulse.tls import TlsFiles

__all__ = ["Services", "keeper"]


class Services:
    def __init__(
        self,
        procs: Processes,
        settings: StackSettings,
        *,
        database_url: Callable[[str], str],
        ca_cert_file: Path,
    ) -> None:
        self.p = procs
        self.s = settings
        self._database_url = database_url
        self._ca_cert_file = ca_cert_file

    def env(self, spec: ServiceSpec, *, instance: int = 1) -> dict[str, str]:
        env = {
            "TOWNPULSE_DATABASE_URL": self._database_url(f"townpulse_{spec.name}"),
            "TOWNPULSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.s.kafka_port}",
            "TOWNPULSE_MQTT_HOST": "127.0.0.1",
            "TOWNPULSE_MQTT_PORT": str(self.s.mqtt_port),
            "TOWNPULSE_HTTP_HOST": "127.0.0.1",
            "TOWNPULSE_HTTP_PORT": str(self.port(spec, instance)),
            "TOWNPULSE_INSTANCE": f"{spec.name}-{instance}",
            "TOWNPULSE_LOG_PSEUDONYM_KEY": self.p.secret("log-pseudonym-key"),
        }
        for secret, (var, users) in KEYS.items():
            if spec.name in users:
                env[var] = self.p.secret(secret)
        if spec.name == "storage":
            # Retention deletes what every service wrote: its own role, its own connection.
            env["TOWNPULSE_MAINTENANCE_DATABASE_URL"] = self._database_url(MAINTENANCE_ROLE)
        if spec.mqtt_user:
            # Each gateway instance has its own identity, bound to its client id (its instance
            # name); they share one password (shared/mqtt_admin.py).
            user = gateway_username(instance) if spec.name == "gateway" else spec.mqtt_user
            env["TOWNPULSE_MQTT_USERNAME"] = user
            env["TOWNPULSE_MQTT_PASSWORD"] = self.p.secret(f"mqtt-{spec.mqtt_user}")
        if spec.name == "gateway" and self.s.gateways > 1:
            # Several gateways split the messages; one keeps a plain subscription, which
            # survives a restart of Mosquitto (services/gateway/settings.py says why).
            env["TOWNPULSE_SHARE_GROUP"] = "gateways"
        if spec.name == "gateway":
            env["TOWNPULSE_MAX_AGE_S"] = str(self.s.max_age_s)
            if self.s.device_repository is not None:
                env["TOWNPULSE_DEVICE_REPOSITORY"] = str(self.s.device_repository)
            # One gateway subscribes to the network servers' brokers: two would each take
            # every uplink (those brokers' subscriptions are not shared).
            env["TOWNPULSE_INTEGRATIONS"] = "true" if instance == 1 else "false"
        if spec.name == "api":
            env["TOWNPULSE_UPSTREAMS"] = json.dumps(self.upstreams())
            env["TOWNPULSE_MQTT_TLS_PORT"] = str(self.s.mqtts_port)
            env["TOWNPULSE_MQTT_CA_FILE"] = str(self._ca_cert_file)
            tls = self.api_tls()
            env["TOWNPULSE_HTTPS_HOST"] = self.s.api_bind
            env["TOWNPULSE_HTTPS_PORT"] = str(self.s.api_tls_port)
            env["TOWNPULSE_TLS_CERTFILE"] = str(tls.server_cert)
            env["TOWNPULSE_TLS_KEYFILE"] = str(tls.server_key)
        return env

    def api_tls(self) -> TlsFiles:
        """The API's certificate, from the stack's CA (the broker's), for the names operators
        may dial; re-issued when they change."""
        from townpulse.tls import ensure_server_cert

        hosts = ["localhost", "127.0.0.1", socket.gethostname(), *self.s.api_tls_hosts]
        if self.s.api_bind not in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
            hosts.append(self.s.api_bind)
        return ensure_server_cert(
            ca_cert_path=self._ca_cert_file,
            ca_key_path=self.p.secrets_dir / "mqtt-ca.key",
            out_dir=self.p.run / "api-tls",
            hosts=hosts,
        )

    def api_url(self, *, https: bool = False) -> str:
        """Where operators reach the API: plain on loopback, or its HTTPS listener."""
        if not https:
            return f"http://127.0.0.1:{self.s.api_port}"
        host = "127.0.0.1" if self.s.api_bind in ("0.0.0.0", "::") else self.s.api_bind  # noqa: S104
        return f"https://{host}:{self.s.api_tls_port}"

    def upstreams(self) -> dict[str, str]:
        """Services whose routes the operator API forwards (`/v1/<segment>/...`)."""
        return {
            route: f"http://127.0.0.1:{self.port(spec)}"
            for spec in SERVICES
            for route in spec.routes
        }

    def port(self, spec: ServiceSpec, instance: int = 1) -> int:
        base: int = getattr(self.s, spec.port_setting)
        # Extra gateway instances listen on the ports after the first one's.
        return base + 10 * (instance - 1)

    def process(self, name: str) -> str:
        """The process (pid-file name) that runs a service: its own, or the compact layout's
        (the stack's setting, or the layout the running stack was started with)."""
        compact = self.s.layout == "compact" or self.p.pid(keeper(COMPACT_PROCESS)) is not None
        return COMPACT_PROCESS if compact and name in COMPACT_MEMBERS else name

    def counts(self, spec: ServiceSpec) -> int:
        return self.s.gateways if spec.name == "gateway" else 1

    def instances(self, spec: ServiceSpec) -> list[str]:
        n = self.counts(spec)
        names = [spec.name if i == 1 else f"{spec.name}-{i}" for i in range(1, n + 1)]
        # Extra instances started by hand (or by a test) are stopped with the rest.
        extra = sorted(
            p.stem for p in self.p.pids.glob(f"{spec.name}-*.pid") if not p.stem.endswith(".keeper")
        )
        return names + [e for e in extra if e not in names]

    def resolve(self, name: str) -> tuple[ServiceSpec, int]:
        """The spec and instance number of `energy` (1) or `energy-2` (2)."""
        base, _, number = name.partition("-")
        spec = next(s for s in SERVICES if s.name in (name, base))
        return spec, int(number) if number.isdigit() and spec.name == base else 1

    def start(self, spec: ServiceSpec, *, instance: int = 1) -> None:
        """Start a service under its keeper, which restarts it whenever it exits."""
        name = spec.name if instance == 1 else f"{spec.name}-{instance}"
        process = self.process(name)
        self.keep(process, self.launch(process))

    def processes(self) -> list[str]:
        """Every process the services run in (one per service and instance, or the compact
        layout's shared one): what the stack and the systemd units start."""
        names = [
            self.process(spec.name if i == 1 else f"{spec.name}-{i}")
            for spec in SERVICES
            for i in range(1, self.counts(spec) + 1)
        ]
        return list(dict.fromkeys(names))

    def launch(self, process: str) -> Launch:
        """`python -m MODULE ...` of a service's process, with its environment."""
        if process == COMPACT_PROCESS:
            specs = [s for s in SERVICES if s.name in COMPACT_MEMBERS]
            env = self.env(specs[0])
            # Each member's own settings (its port, its instance name) over the common ones.
            env |= {member_env_var(s.name): json.dumps(self.env(s)) for s in specs}
            module_args = ["townpulse.together", *(s.name for s in specs)]
        else:
            spec, instance = self.resolve(process)
            env = self.env(spec, instance=instance)
            module_args = [spec.module]
        return Launch(argv=[sys.executable, "-m", *module_args], marker=module_args[0], env=env)

    def keep(self, name: str, launch: Launch) -> None:
        """A process under a keeper, unless it (or its keeper) runs already."""
        self.p.keep(name, launch)

    def stop(self, name: str) -> None:
        """Stop a service and its keeper (which would otherwise start it again); in the compact
        layout, the process it shares with the other domain services."""
        self.p.stop_kept(self.process(name))

    def restarts(self, name: str) -> dict[str, object]:
        """What the keeper of a service says: restarts, last exit status, state."""
        name = self.process(name)
        try:
            state: dict[str, object] = json.loads((self.p.pids / f"{name}.keeper.json").read_text())
        except (OSError, ValueError):
            return {}
        return state

    def wait_healthy(self, spec: ServiceSpec, *, instance: int = 1) -> None:
        url = f"http://127.0.0.1:{self.port(spec, instance)}/readyz"
        name = spec.name if instance == 1 else f"{spec.name}-{instance}"
        process = self.process(name)
        kept_by = self.p.pid(keeper(process))
        wait_until(
            lambda: http_ok(url),
            timeout=self.s.start_timeout_s,
            what=f"{name} to be ready ({url}); see {self.p.logs / (process + '.log')}",
            # The keeper restarts a service that exits; only its own death is final.
            give_up=(lambda: not alive(kept_by)) if kept_by else None,
        )

    def status(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for spec in SERVICES:
            for i, name in enumerate(self.instances(spec), start=1):
                process = self.process(name)
                pid = self.p.pid(process)
                port = self.port(spec, i)
                ready = bool(pid) and http_ok(f"http://127.0.0.1:{port}/readyz")
                kept = self.restarts(name) if self.p.pid(keeper(process)) else {}
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
        return rows
