"""What the local stack is made of: its settings, its services (defined once), its paths."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, create_model, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import domains
from shared.domains import DomainManifest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KAFKA_LIB = DEPLOY / "kafka" / "target" / "lib"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# The distribution's broker: the stack's fallback when deploy/build-mosquitto.sh built none.
DYNSEC_PLUGIN_CANDIDATES = (
    Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"),
    Path("/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so"),
    Path("/usr/lib/mosquitto_dynamic_security.so"),
)


class StackError(RuntimeError):
    pass


def _beside_repo() -> Path | None:
    path = REPO.parent / "shared" / "data" / "lorawan-devices"
    return path if path.is_dir() else None


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOWNPULSE_", frozen=True, extra="ignore")

    run_dir: Path = REPO / ".run"
    # Where backups go (pgBackRest's repository, the files archive, the reports): another disk
    # or a NAS mount in a real town, never the disk the run directory is on (a dead disk would
    # take both). /var/backups is where Debian keeps its own; docs/operations.md.
    backup_dir: Path = Path("/var/backups/townpulse")
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
    # Plain MQTT carries device passwords in clear: loopback only (the services). Another
    # address is refused unless `mqtt_plain_off_loopback` says the town means it (a private
    # network it trusts, e.g. a container network; README "MQTT security").
    mqtt_plain_bind: str = "127.0.0.1"
    mqtt_plain_off_loopback: bool = False
    # Extra names (DNS or IP) the broker's certificate is valid for, e.g. the town's host name.
    mqtt_tls_hosts: list[str] = []
    # Where deploy/build-timescaledb.sh installs TimescaleDB, in a private copy of PostgreSQL 15.
    timescaledb_prefix: Path = Path("/opt/townpulse/pg15-timescaledb")
    # Where deploy/build-mosquitto.sh installs the broker (2.1, from Debian's source package);
    # without it the stack runs the machine's own `mosquitto`.
    mosquitto_prefix: Path = Path("/opt/townpulse/mosquitto")
    # The operator API over HTTPS, with a certificate from the stack's CA (townpulse/tls.py):
    # the listener for operators on other machines (set api_bind to 0.0.0.0, or the town's
    # address, and list the names they dial in api_tls_hosts). Its plain HTTP port stays on
    # loopback, for the services, the CLI and a reverse proxy on this host. Default port:
    # api_port + 443.
    api_bind: str = "127.0.0.1"
    api_https_port: int | None = None
    api_tls_hosts: list[str] = []
    # How old a reading the stack's gateway takes (the gateway's TOWNPULSE_MAX_AGE_S, 7 days on
    # its own): 16 days, so that the living town's two weeks of history (townpulse/simulator/
    # cli.py) reach the models, which warm up on them before the first console is seen.
    max_age_s: int = 16 * 24 * 3600
    # The platform's services; each domain's `<name>_port` (TOWNPULSE_<NAME>_PORT) is added
    # below from its manifest's default port.
    gateway_port: int = 18101
    storage_port: int = 18102
    api_port: int = 18000
    alerts_port: int = 18105
    # A town's stream is small (hundreds of messages per second at most): Kafka's own default
    # of 1 GB of heap is mostly empty. bench/footprint.py measures what it costs.
    kafka_heap: str = "256m"
    # The JVM sized for that stream (docker-compose's KAFKA_JVM_PERFORMANCE_OPTS too): a heap
    # that starts small and gives memory back (the serial collector shrinks it after a
    # collection; G1 mostly keeps what it touched), and the client compiler only, whose code
    # cache and compiler threads cost a fraction of C2's. Kafka alone still moves tens of
    # thousands of messages a second (bench.e2e's kafka_only), far above a town's rate.
    kafka_jvm_options: str = (
        "-Xms32m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=48m"
    )
    # When Mosquitto saves its state (sessions, queued messages): every `mqtt_autosave_s`
    # seconds, or, when `mqtt_autosave_changes` is set, after that many changes (a message
    # received or queued, a subscription). Mosquitto 2.0 writes its whole state each time and
    # reads one packet per client per pass of its loop, saving after each pass that changed
    # something: saving after every change reads the gateway's PUBACKs one per save, its unread
    # acknowledgements pile up and each save grows (bench.mosquitto_autosave; in bench.e2e, at
    # 1,000-2,000 msg/s from 2,000 devices, its file grew to 89 MB of messages whose PUBACK it
    # had not read). Mosquitto 2.1.2, which the stack now builds, left none unread in the same
    # benchmark and acknowledged 8,626 msg/s saving after every change (12,338 every second):
    # the default could move to every change, not measured end to end yet. Every second, a
    # crash of the broker (not a stop: it saves on the way out) loses at most the last second
    # of acknowledged messages; saving after every change narrows that to one pass of the loop,
    # not to nothing (a PUBACK may leave before the save: eclipse-mosquitto/mosquitto#1855).
    # docs/performance.md.
    mqtt_autosave_s: int = Field(default=1, ge=1, le=86_400)
    mqtt_autosave_changes: int | None = Field(default=None, ge=1, le=1_000_000)
    gateways: int = 1
    # "compact": the domain services (energy, waste, traffic) share one process, which imports
    # River, NumPy and SciPy once instead of three times (bench.footprint: about 130 MB each),
    # at the price of one core between them and of restarting together. For a town's small
    # machine; "separate" (each its own process) scales further (townpulse/together.py).
    layout: Literal["separate", "compact"] = "separate"
    start_timeout_s: float = 120.0
    # A local copy of The Things Network's Device Repository, from which an admin imports
    # vendors' codecs by name (the gateway's TOWNPULSE_DEVICE_REPOSITORY, the same variable).
    # Default: the copy beside the repository, when there is one.
    device_repository: Path | None = Field(default_factory=_beside_repo)

    @property
    def api_tls_port(self) -> int:
        return self.api_https_port or self.api_port + 443

    @model_validator(mode="after")
    def _plain_mqtt_on_loopback(self) -> StackSettings:
        if not self.mqtt_plain_off_loopback and not is_loopback(self.mqtt_plain_bind):
            raise ValueError(
                f"TOWNPULSE_MQTT_PLAIN_BIND={self.mqtt_plain_bind!r} would carry device passwords"
                " in clear off this machine: devices use the TLS listener (TOWNPULSE_MQTT_BIND);"
                " set TOWNPULSE_MQTT_PLAIN_OFF_LOOPBACK=true to open plain MQTT anyway"
            )
        return self


def _with_domain_ports(
    base: type[StackSettings], manifests: Sequence[DomainManifest]
) -> type[StackSettings]:
    """`base` with a port setting per domain (`<name>_port`, TOWNPULSE_<NAME>_PORT), its
    default the manifest's: a new domain's port needs no field written here."""
    fields: dict[str, Any] = {
        m.port_setting: (int, Field(default=m.service.default_port, ge=1, le=65535))
        for m in manifests
    }
    return create_model(base.__name__, __base__=base, __module__=__name__, **fields)


if not TYPE_CHECKING:
    # mypy sees the class above (a domain's port is read by name: getattr(settings, setting)).
    StackSettings = _with_domain_ports(StackSettings, domains.registered())


def is_loopback(host: str) -> bool:
    """Whether a bind address is this machine's loopback only.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback("192.168.1.2"), is_loopback("example.org")
    (False, False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port_setting: str
    # The identity a process needs beyond the common settings (MQTT user, instance id).
    mqtt_user: str | None = None
    # First path segments under /v1/ that the operator API forwards to this service.
    routes: tuple[str, ...] = ()


def domain_spec(manifest: DomainManifest) -> ServiceSpec:
    """The service of a domain, as its manifest declares it (shared/domains.py)."""
    return ServiceSpec(
        manifest.name,
        manifest.service.module,
        manifest.port_setting,
        routes=manifest.routes,
    )


def service_specs(manifests: Sequence[DomainManifest]) -> tuple[ServiceSpec, ...]:
    """The platform's own services, and a domain's for each manifest: between the API and
    alerts, which consumes what they publish."""
    return (
        ServiceSpec(
            "gateway",
            "services.gateway",
            "gateway_port",
            mqtt_user="gateway",
            # Network-server integrations, codecs, profiles, and HTTP push (`ingest`: forwarded
            # without an API key, services/api/proxy.py).
            routes=("integrations", "heard-devices", "codecs", "profiles", "ingest"),
        ),
        ServiceSpec("storage", "services.storage", "storage_port"),
        ServiceSpec("api", "services.api", "api_port", mqtt_user="admin"),
        *(domain_spec(m) for m in manifests),
        ServiceSpec(
            "alerts",
            "services.alerts",
            "alerts_port",
            routes=("alerts", "alert-rules", "webhooks"),
        ),
    )


# The one list of services: the local runner starts these, the operator API forwards their
# routes (TOWNPULSE_UPSTREAMS, made from it) and docker-compose.yml has the same (tested).
SERVICES = service_specs(domains.registered())
# The domain services: they run the device runtime (its checkpoint key) and share one process
# in the compact layout.
DOMAIN_SERVICES = domains.names()
INFRA = ("postgres", "kafka", "mosquitto")
# Each service's own database role, and retention's (shared/migrations/versions/0009_roles.py).
MAINTENANCE_ROLE = "townpulse_maintenance"
# The watch's: it adds the platform's footprint samples, nothing else (0010_footprint.py).
WATCH_ROLE = "townpulse_watch"
DATABASE_ROLES = (*(f"townpulse_{s.name}" for s in SERVICES), MAINTENANCE_ROLE, WATCH_ROLE)
# Keys the database never sees, each given only to the services that use it: checkpoints'
# HMAC (domain services), webhook secrets' encryption (alerts), the audit log's pseudonyms at
# erasure (api). Files under .run/secrets, like the passwords.
KEYS = {
    "checkpoint-key": ("TOWNPULSE_CHECKPOINT_KEY", DOMAIN_SERVICES),
    "webhook-secrets-key": ("TOWNPULSE_WEBHOOK_SECRETS_KEY", ("alerts",)),
    "audit-pseudonym-key": ("TOWNPULSE_AUDIT_PSEUDONYM_KEY", ("api",)),
}
# The services that share a process in the compact layout, and that process's name.
COMPACT_MEMBERS = DOMAIN_SERVICES
COMPACT_PROCESS = "domains"
# How that process gets each member's own settings (townpulse.together): a JSON object in this
# variable per member. Named here, beside the layout, because the stack writes what
# townpulse.together reads, and the stack imports nothing of that module.
MEMBER_ENV_PREFIX = "TOWNPULSE_MEMBER_ENV_"


def member_env_var(name: str) -> str:
    return f"{MEMBER_ENV_PREFIX}{name.upper()}"
