from __future__ import annotations

from shared.settings import ServiceSettings


class StorageSettings(ServiceSettings):
    http_port: int = 18102
    instance: str = "storage-1"
    group_id: str = "storage"
    # Up to this many Kafka records per database transaction: large enough that COPY's per-call
    # cost vanishes, small enough that one transaction stays well under a second.
    batch_max_records: int = 5000
    # How long to wait for a batch to fill: bounds publish->stored latency at low rates.
    batch_wait_ms: int = 100
    # Raw readings older than this are dropped by whole partitions (rollups are kept). With
    # TimescaleDB, the retention policy set by the migration does this instead.
    retention_days: int = 730
    maintenance_interval_s: float = 3600.0
