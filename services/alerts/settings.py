from __future__ import annotations

from pydantic import SecretStr

from services.alerts.domain.targets import IPNetwork
from shared.settings import ConsumerSettings


class AlertsSettings(ConsumerSettings):
    http_port: int = 18105
    # The key webhook secrets are encrypted with in the database (adapters/secrets.py), given
    # to this service only. Unset: secrets are stored in clear, as before.
    webhook_secrets_key: SecretStr | None = None
    instance: str = "alerts-1"
    group_id: str = "alerts"
    # Records per database transaction: alert work per record is small, and a smaller batch
    # keeps event -> webhook latency low when a backlog is drained.
    batch_max_records: int = 1000
    # How long a poll waits for records; also how often time-based transitions get a chance.
    batch_wait_ms: int = 200
    # Time-based transitions (minimum duration elapsed, cool-down over, silent devices) run when
    # the consumer is idle, so a backlog being replayed is judged by its own timestamps; under
    # constant traffic they still run at least this often.
    max_tick_interval_s: float = 10.0
    # Damping of episode events from the domain services (rules carry their own).
    event_min_duration_s: float = 0.0
    event_cooldown_s: float = 60.0
    # One attempt may take this long in all (connect, send, response), as in Standard Webhooks.
    webhook_timeout_s: float = 15.0
    # Response bodies are drained up to this size and never stored.
    webhook_max_response_bytes: int = 64 * 1024
    # Concurrent attempts in all, and per subscription: a slow receiver holds its own slots only.
    webhook_max_in_flight: int = 64
    webhook_max_in_flight_per_subscription: int = 8
    # How often the outbox is looked at when nothing woke the dispatcher (retries coming due).
    webhook_poll_interval_s: float = 0.5
    # After a rotation the previous secret still signs (second signature) this long by default.
    webhook_secret_overlap_s: float = 86400.0
    # A subscription whose deliveries fail this many times in a row (each after its whole retry
    # schedule, about a day and a half) is disabled with a reason; 0 never disables.
    webhook_disable_after_failures: int = 5
    # Networks webhooks may reach although they are not public (loopback, private, link-local):
    # empty by default. JSON, e.g. TOWNPULSE_WEBHOOK_ALLOWED_NETWORKS='["10.1.2.0/24"]'.
    webhook_allowed_networks: tuple[IPNetwork, ...] = ()
