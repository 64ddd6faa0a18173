"""systemd units rendered from the stack's components (their `Launch`), nothing hand-copied.

Users: PostgreSQL runs as `postgres` and Mosquitto as `mosquitto` (the users the local stack
gives them); Kafka, the services and the watch as the `townpulse` system user. Not
`DynamicUser=`: Kafka's log and the watch's state must keep one owner across restarts and
reboots, which a dynamic uid only gives with `StateDirectory=` under /var/lib, not in the
stack's run directory. Steps that need root (initdb, formatting Kafka's log, the broker's TLS
files, migrations and MQTT identities) run as `ExecStartPre=+` (full privileges, that step
only) or in the root `townpulse-bootstrap` oneshot, with the local stack's own code.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from townpulse.stack import Stack
from townpulse.stack.processes import Launch, base_env
from townpulse.stack.runner import WATCH

PREFIX = "townpulse-"
TARGET = "townpulse.target"
BOOTSTRAP = "bootstrap"
BACKUP = "backup"
SIMULATOR = "simulator"
SERVICE_USER = "townpulse"
# The users the local stack runs these as (townpulse/stack/postgres.py, mosquitto.py).
OWN_USERS = {"postgres": "postgres", "mosquitto": "mosquitto"}

# Restart a crashed component after 2 s; a component that fails 10 times in 10 minutes stays
# down (systemd gives up) instead of looping: the restarts alert has fired by then, and the
# journal says why.
RESTART = {"Restart": "on-failure", "RestartSec": "2s"}
START_LIMIT = {"StartLimitIntervalSec": "600", "StartLimitBurst": "10"}

# Hardening every long-running component takes (systemd.exec(5)); writable paths per unit.
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "read-only",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "UMask": "0077",
}


def unit_name(component: str) -> str:
    """`townpulse-kafka.service` for `kafka`."""
    return f"{PREFIX}{component}.service"


@dataclass(frozen=True)
class UnitFile:
    name: str
    text: str


@dataclass(frozen=True)
class Plan:
    """What `install` writes: unit files, and environment files (secrets: mode 0600)."""

    units: list[UnitFile]
    env_files: dict[str, dict[str, str]] = field(default_factory=dict)


def quote(arg: str) -> str:
    """One ExecStart argument as systemd reads it (systemd.service(5), "Command lines").

    >>> quote("-Xmx256m")
    '-Xmx256m'
    >>> quote("a b")
    '"a b"'
    >>> quote("100%")
    '100%%'
    """
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not any(c in arg for c in " \t\"'\\;"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command(argv: Sequence[str]) -> str:
    return " ".join(quote(a) for a in argv)


def env_line(key: str, value: str) -> str:
    """A line of an EnvironmentFile: quoted so that JSON values keep their quotes.

    >>> env_line("A", '{"x": 1}')
    'A=\\'{"x": 1}\\''
    """
    if "'" not in value and "\n" not in value:
        return f"{key}='{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'{key}="{escaped}"'


def render(sections: Mapping[str, Mapping[str, str | Sequence[str]]]) -> str:
    out: list[str] = ["# Written by `townpulse service install`; `townpulse service uninstall`"]
    out.append("# removes it. Re-run install after changing the stack's settings.")
    for section, keys in sections.items():
        out.append(f"\n[{section}]")
        for key, value in keys.items():
            values = [value] if isinstance(value, str) else list(value)
            out += [f"{key}={v}" for v in values]
    return "\n".join(out) + "\n"


class Writer:
    """Renders the units of one stack (its settings, its run directory)."""

    def __init__(self, stack: Stack, *, env_dir: Path, python: str = sys.executable) -> None:
        self.stack = stack
        self.env_dir = env_dir
        self.python = python

    def _townpulse(self, *args: str) -> str:
        return command([self.python, "-m", "townpulse", *args])

    def _step(self, *args: str) -> str:
        return command([self.python, "-m", "townpulse.service", *args])

    def _env_files(self, name: str) -> list[str]:
        return [str(self.env_dir / "stack.env"), str(self.env_dir / f"{name}.env")]

    def stack_env(self) -> dict[str, str]:
        """The stack's settings as at install time (ports, layout, run dir...), so that every
        unit and every `townpulse` command they run sees the same stack."""
        import json

        out = {}
        for key, value in self.stack.s.model_dump(mode="json").items():
            if value is None:
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            out[f"TOWNPULSE_{key.upper()}"] = text
        out["TOWNPULSE_RUN_DIR"] = str(self.stack.run)
        return out

    def plan(self, *, simulator: bool = False) -> Plan:
        s = self.stack
        units: list[UnitFile] = []
        env: dict[str, dict[str, str]] = {"stack": self.stack_env()}
        procs = s.procs

        def long_running(
            name: str,
            launch: Launch,
            *,
            description: str,
            after: Sequence[str],
            requires: Sequence[str] = (),
            wants: Sequence[str] = (),
            writable: Sequence[Path] = (),
            pre: str | None = None,
            post: str | None = None,
            extra: Mapping[str, str | Sequence[str]] | None = None,
            unit_extra: Mapping[str, str] | None = None,
        ) -> None:
            env[name] = {**base_env(), **launch.env}
            user = launch.user or OWN_USERS.get(name, SERVICE_USER)
            service: dict[str, str | Sequence[str]] = {
                "Type": "simple",
                "User": user,
                "Group": user,
                "WorkingDirectory": str(_repo()),
                "EnvironmentFile": self._env_files(name),
            }
            if pre:
                service["ExecStartPre"] = pre
            service["ExecStart"] = command(launch.argv)
            if post:
                service["ExecStartPost"] = post
            service |= {
                **RESTART,
                "StandardOutput": "journal",
                "StandardError": "journal",
                "SyslogIdentifier": f"{PREFIX}{name}",
                **HARDENING,
            }
            if writable:
                service["ReadWritePaths"] = " ".join(str(p) for p in writable)
            service |= dict(extra or {})
            units.append(
                UnitFile(
                    unit_name(name),
                    render(
                        {
                            "Unit": {
                                **_unit_section(
                                    description, after=after, requires=requires, wants=wants
                                ),
                                **(unit_extra or {}),
                            },
                            "Service": service,
                            "Install": {"WantedBy": TARGET},
                        }
                    ),
                )
            )

        long_running(
            "postgres",
            s.postgres.launch(),
            description="TownPulse PostgreSQL",
            after=["network.target"],
            # Its archive_command (pgBackRest) writes WAL to the backup repository and keeps its
            # logs and locks in its own directory.
            writable=[
                procs.data_dir("postgres", "postgres", create=False),
                procs.data_dir("pgbackrest", "postgres", create=False),
                s.postgres.backrest.repo_path(),
            ],
            pre=f"+{self._step('prepare', 'postgres')}",
            post=self._step("wait", "postgres"),
            # The "fast" shutdown, as the local stack's stop (postgres.py says why). A backup
            # directory on a NAS or a second disk is mounted first: else WAL would be archived
            # into the empty mount point, on the disk it is meant to outlive.
            extra={"KillSignal": "SIGINT", "TimeoutStopSec": "60"},
            unit_extra={"RequiresMountsFor": str(s.s.backup_dir)},
        )
        long_running(
            "kafka",
            s.kafka.launch(),
            description="TownPulse Kafka (KRaft)",
            after=[unit_name("postgres")],
            wants=[unit_name("postgres")],
            writable=[s.kafka.data_dir],
            pre=f"+{self._step('prepare', 'kafka')}",
            post=self._step("wait", "kafka"),
            extra={"TimeoutStopSec": "60"},
        )
        long_running(
            "mosquitto",
            s.mosquitto.launch(),
            description="TownPulse Mosquitto",
            after=[unit_name("kafka")],
            wants=[unit_name("kafka")],
            writable=[procs.data_dir("mosquitto", "mosquitto", create=False)],
            pre=f"+{self._step('prepare', 'mosquitto')}",
            post=self._step("wait", "mosquitto"),
        )
        infra = [unit_name(n) for n in ("postgres", "kafka", "mosquitto")]
        env[BOOTSTRAP] = base_env()
        units.append(
            UnitFile(
                unit_name(BOOTSTRAP),
                render(
                    {
                        "Unit": _unit_section(
                            "TownPulse bootstrap: database, migrations, topics, MQTT identities",
                            after=infra,
                            requires=infra,
                        ),
                        # Root: it reads the stack's secrets and writes the first admin key.
                        "Service": {
                            "Type": "oneshot",
                            "RemainAfterExit": "yes",
                            "WorkingDirectory": str(_repo()),
                            "EnvironmentFile": self._env_files(BOOTSTRAP),
                            "ExecStart": self._step("prepare", BOOTSTRAP),
                            "StandardOutput": "journal",
                            "StandardError": "journal",
                            "NoNewPrivileges": "yes",
                            "PrivateTmp": "yes",
                            "ProtectSystem": "full",
                        },
                        "Install": {"WantedBy": TARGET},
                    }
                ),
            )
        )
        ready = [unit_name(BOOTSTRAP), unit_name("mosquitto")]
        services = s.services.processes()
        for process in services:
            long_running(
                process,
                s.services.launch(process),
                description=f"TownPulse {process}",
                after=ready,
                requires=[unit_name(BOOTSTRAP)],
                # The API's HTTPS key, readable by its user (commands.prepare).
                pre=f"+{self._step('prepare', process)}" if process == "api" else None,
            )
        watch = s.watch_launch()
        long_running(
            WATCH,
            Launch(
                argv=watch.argv,
                marker=watch.marker,
                env={**watch.env, "TOWNPULSE_WATCH_SUPERVISOR": "systemd"},
            ),
            description="TownPulse early warnings (disk, backups, certificates, restarts)",
            after=ready,
            requires=[unit_name(BOOTSTRAP)],
            writable=[s.run / "watch"],
            pre=f"+{self._step('prepare', WATCH)}",
        )
        if simulator:
            sim = s.simulator_launch()
            # The key's path is the credential's, set below: an EnvironmentFile would win over
            # `Environment=` (systemd.exec(5)).
            sim_env = {k: v for k, v in sim.env.items() if k != "ADMIN_API_KEY_FILE"}
            long_running(
                SIMULATOR,
                Launch(argv=sim.argv, marker=sim.marker, env=sim_env),
                description="TownPulse simulated town (a demonstration)",
                after=[unit_name(p) for p in services],
                wants=[unit_name(p) for p in services],
                # It registers its devices with the admin key: handed over as a credential,
                # which only this unit's process can read, instead of opening the key's file.
                extra={
                    "LoadCredential": f"admin-api-key:{s.admin_key_file}",
                    "Environment": "ADMIN_API_KEY_FILE=%d/admin-api-key",
                },
            )
        units += self._backup()
        names = [u.name for u in units if u.name.endswith(".service")]
        units.append(UnitFile(TARGET, _target(names, timers=[f"{PREFIX}{BACKUP}.timer"])))
        return Plan(units=units, env_files=env)

    def _backup(self) -> list[UnitFile]:
        name = unit_name(BACKUP)
        service = render(
            {
                "Unit": _unit_section(
                    "TownPulse backup", after=[unit_name(BOOTSTRAP)], wants=[unit_name("postgres")]
                ),
                # Root: it reads every component's data and the stack's secrets; the backup
                # directory may be any mount the town chose, so the system is only read-only
                # below /usr and /etc (ProtectSystem=full), not everywhere.
                "Service": {
                    "Type": "oneshot",
                    "WorkingDirectory": str(_repo()),
                    "EnvironmentFile": [str(self.env_dir / "stack.env")],
                    "ExecStart": self._townpulse("backup", "run"),
                    "StandardOutput": "journal",
                    "StandardError": "journal",
                    "NoNewPrivileges": "yes",
                    "PrivateTmp": "yes",
                    "ProtectSystem": "full",
                    "Nice": "10",
                    "IOSchedulingClass": "idle",
                },
            }
        )
        timer = render(
            {
                "Unit": {"Description": "TownPulse daily backup"},
                # Daily, at a random time in the first hour after midnight, and at boot when
                # the machine was off at that time (Persistent).
                "Timer": {
                    "OnCalendar": "daily",
                    "RandomizedDelaySec": "1h",
                    "Persistent": "true",
                    "Unit": name,
                },
                "Install": {"WantedBy": "timers.target"},
            }
        )
        return [UnitFile(name, service), UnitFile(f"{PREFIX}{BACKUP}.timer", timer)]


def _unit_section(
    description: str,
    *,
    after: Sequence[str],
    requires: Sequence[str] = (),
    wants: Sequence[str] = (),
) -> dict[str, str | Sequence[str]]:
    section: dict[str, str | Sequence[str]] = {"Description": description, "PartOf": TARGET}
    if after:
        section["After"] = " ".join(after)
    if requires:
        section["Requires"] = " ".join(requires)
    if wants:
        section["Wants"] = " ".join(wants)
    section |= START_LIMIT
    return section


def _target(services: Sequence[str], *, timers: Sequence[str]) -> str:
    return render(
        {
            "Unit": {
                "Description": "TownPulse: every component of the town's platform",
                "Wants": " ".join([*services, *timers]),
                "After": "network-online.target",
            },
            "Install": {"WantedBy": "multi-user.target"},
        }
    )


def _repo() -> Path:
    from townpulse.stack.config import REPO

    return REPO
