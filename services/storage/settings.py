from __future__ import annotations

from pydantic import Field, SecretStr

from shared.retention import RetentionSettings
from shared.settings import ConsumerSettings


class StorageSettings(ConsumerSettings):
    http_port: int = 18102
    instance: str = "storage-1"
    group_id: str = "storage"
    # Up to this many Kafka records per database transaction: large enough that COPY's per-call
    # cost vanishes, small enough that one transaction stays well under a second.
    batch_max_records: int = 5000
    # How long to wait for a batch to fill: bounds publish->stored latency at low rates.
    batch_wait_ms: int = 100
    # How long each data class is kept (TOWNPULSE_RETENTION_*_DAYS).
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    # Retention's own database role (townpulse_maintenance): the one allowed to delete what
    # every service wrote. Unset: the service's own connection (a single-role database).
    maintenance_database_url: SecretStr | None = None
    # Retention is in days: an hourly pass keeps every class within an hour of its period.
    maintenance_interval_s: float = 3600.0
