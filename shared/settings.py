"""Settings base shared by every service: infrastructure addresses, dev mode, secret checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.townholidays import check_holidays
from shared.townzone import DEFAULT_ZONE, TownZone

# Values that people copy from examples. Outside dev mode a secret equal to one of these (or
# shorter than MIN_SECRET_LEN) is refused, so a forgotten example value never reaches production.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "password", "admin", "townpulse", "dev"}
)
MIN_SECRET_LEN = 16


class ServiceSettings(BaseSettings):
    """Settings common to every service; each service subclasses it with its own fields."""

    model_config = SettingsConfigDict(env_prefix="TOWNPULSE_", frozen=True, extra="ignore")

    dev_mode: bool = False
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # An HTTPS listener beside the plain one, with this certificate and key (the operator API's,
    # for operators on other machines; the plain listener stays for the services on this one).
    # Modern ciphers only (shared/http.py); HSTS on its answers.
    https_host: str = "127.0.0.1"
    https_port: int | None = None
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    database_url: SecretStr = SecretStr("postgresql://townpulse@127.0.0.1:5433/townpulse")
    kafka_bootstrap: str = "127.0.0.1:9092"
    # The town's clock and public holidays: what "a Sunday at 3 am" means to the models, and
    # where the town's days begin for every daily figure (shared/townzone.py). An IANA name.
    timezone: TownZone = DEFAULT_ZONE
    # Any country of the `holidays` package, with a subdivision after a hyphen (FR-57), or none.
    holidays_country: Annotated[str, AfterValidator(check_holidays)] = "FR"
    # Request bodies above this are refused (413) before they are read: the largest legitimate
    # body (a device with its metadata, a webhook with its filters) is a few kB.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # The key of the device pseudonyms in the logs (shared.logging): the same for every service,
    # so that one device has one pseudonym everywhere. Unset: a key of each process's own, and
    # nobody can tell which device a line is about.
    log_pseudonym_key: SecretStr | None = None
    # Failed API-key checks allowed per source address, and per key id, in a moving window;
    # past that, 429 with Retry-After (shared/throttle.py). 20 a minute is far beyond a person
    # retyping a key or a script with a stale one, and far below a guessing or flooding client.
    auth_failures_per_source: int = Field(default=20, ge=1)
    auth_failures_per_key: int = Field(default=20, ge=1)
    auth_failure_window_s: int = Field(default=60, ge=1, le=86_400)
    # How long a service trusts its copy of the active API keys (shared/keyring.py): another
    # service's revocation reaches it within this time (the operator API's own at once).
    key_cache_ttl_s: float = Field(default=5.0, gt=0, le=300)

    @model_validator(mode="after")
    def _https_needs_a_certificate(self) -> ServiceSettings:
        if self.https_port is not None and (self.tls_certfile is None or self.tls_keyfile is None):
            raise ValueError("https_port needs tls_certfile and tls_keyfile")
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.dev_mode:
            return self
        for name, value in self:
            if isinstance(value, SecretStr):
                _check_secret(name, value.get_secret_value())
        return self


def _check_secret(name: str, value: str) -> None:
    if name == "database_url":
        # The URL itself is not a secret; its password part is.
        from sqlalchemy.engine import make_url

        password = make_url(value).password or ""
        # Peer/trust authentication on a local socket needs no password at all.
        if not password:
            return
        value = str(password)
    if value.lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_LEN:
        raise ValueError(
            f"{name}: a placeholder or short secret is only accepted with TOWNPULSE_DEV_MODE=1"
        )


def settings_summary(settings: BaseSettings) -> dict[str, Any]:
    """Settings as a dict safe to log: SecretStr stays masked."""
    return {k: (str(v) if isinstance(v, SecretStr) else v) for k, v in settings}


class ConsumerSettings(ServiceSettings):
    """A service that consumes Kafka through the stream loop (storage, the domain services,
    alerts): what they share in how their batches are fetched."""

    # How long the broker may hold a fetch to fill it (shared.kafka.create_consumer): fewer,
    # larger batches at moderate rates, at most this much latency added; 0: fetch as soon as
    # one record is there.
    batch_fill_ms: int = Field(default=100, ge=0, le=1000)
    # A consumer that has not finished a poll, or has fetched nothing while records wait, for
    # this long is stuck (shared.stream.loop's watchdog): the process exits for its manager to
    # start it again. Far above a batch's time and the retry backoff's cap (10 s).
    stream_stall_s: float = Field(default=60.0, ge=30.0, le=3600.0)


class StreamServiceSettings(ConsumerSettings):
    """A domain service on the runtime (shared/runtime): its consumer group and checkpoints."""

    instance: str = "stream-1"
    group_id: str = "stream"
    # Device states kept in memory; the rest wait in their checkpoints.
    max_devices: int = 2000
    # Records per transaction: big enough to amortise the commit, small enough that a
    # rebalance (which waits for the batch in progress) stays quick.
    batch_max_records: int = 2000
    batch_wait_ms: int = 200
    # A model is checkpointed once it has changed for this long, or when its partition would
    # replay more records than this, not every batch: pickling every touched model per batch
    # was 42 % of the energy service's CPU. A crash replays about this much into the models
    # (without emitting anything twice).
    checkpoint_interval_s: float = 30.0
    checkpoint_interval_records: int = 50_000
    # Pickling time per batch for the models that are due (oldest first; the rest wait for the
    # next batch): all of them at once held the stream for seconds (docs/performance.md).
    checkpoint_budget_s: float = Field(default=0.05, gt=0, le=10)
    # The HMAC key of the checkpoints (shared/runtime/checkpoints.py), which the database never
    # holds. Unset: a key made at start-up, so no checkpoint outlives a restart.
    checkpoint_key: SecretStr | None = None
    # The first start after the upgrade that introduced the HMACs: load checkpoints that have
    # none (and sign them at their next save) instead of refusing them. Only when nobody but
    # the services could have written to the database until then.
    checkpoint_accept_unsigned: bool = False
