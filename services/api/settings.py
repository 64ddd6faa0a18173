from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from shared.factors import FactorOverrides
from shared.inputs import OutboundUrl
from shared.retention import RetentionSettings
from shared.settings import ServiceSettings

# Without a configured key (a test's own settings), erased ids still leave the audit log, under
# pseudonyms nobody can link back: a key made at start-up and never kept.
_EPHEMERAL_KEY = secrets.token_bytes(32)


class ApiSettings(ServiceSettings):
    http_port: int = 18000
    # The key of the audit log's pseudonyms of erased devices (shared/erasure.py): outside the
    # database, so that the database alone cannot tell which id an entry was about.
    audit_pseudonym_key: SecretStr | None = None
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    # Where devices should connect (returned with their credentials): in a real town the
    # broker's public name, not the address the API itself uses.
    mqtt_public_host: str | None = None
    mqtt_public_port: int | None = None
    # The broker's TLS listener (what devices should use) and the CA that signed its
    # certificate, handed to each device with its credentials. Unset: no TLS offered.
    mqtt_tls_port: int | None = None
    mqtt_public_tls_port: int | None = None
    mqtt_ca_file: Path | None = None
    mqtt_username: str = "admin"
    mqtt_password: SecretStr = SecretStr("")
    # Domain services whose routes are served under this API: {"energy": "http://..."} makes
    # /v1/energy/... reach the energy service, so operators need only API_URL.
    upstreams: dict[str, str] = Field(default_factory=dict)
    # HTTP push forwarded to the gateway (upstream "ingest") without an API key: bodies above
    # this are refused (413) before they reach it. A network server's uplink event is a few kB;
    # a device's batch at the gateway's own limit (64 KiB of payload) fits with room to spare.
    ingest_max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    # What GET /v1/admin/retention reports (the storage service enforces the same settings).
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    # POST /v1/devices/bulk: rows per request, a few seconds of broker work at most at
    # 10,000 devices (BENCHMARKS.md, device registration); the CLI sends larger files in chunks.
    bulk_max_rows: int = Field(default=1000, ge=1, le=10_000)
    # Devices per dynamic-security command message. Mosquitto serves nobody else while it runs
    # one message's commands (each rewrites its whole file): at 10,000 devices, 50 hold it
    # about 8 s (BENCHMARKS.md). Batching saves round trips, which matter only while the broker
    # holds few devices; lower it where live readings matter more than registration speed.
    bulk_broker_batch: int = Field(default=50, ge=1, le=1000)
    max_raw_readings: int = 50_000
    max_buckets: int = 20_000
    # Open data: every published row aggregates at least this many devices (zones, building
    # types) or, for traffic counters, this many vehicles in the hour.
    open_data_min_devices: int = Field(default=3, ge=2)
    open_data_min_vehicles: int = Field(default=10, ge=1)
    # Building types (device metadata `building_type`) that count as public buildings.
    open_data_public_building_types: tuple[str, ...] = ("school", "town_hall", "gym", "library")
    # The town's name in the catalogue.
    open_data_publisher: str = "TownPulse"
    # The API's public address (TOWNPULSE_PUBLIC_BASE_URL, e.g. https://data.town.example),
    # what the open-data catalogue's links start with. Unset: the links are relative (to the
    # catalogue's own address). Never the request's Host header, which the client chooses: a
    # cache in front of the API would otherwise serve a catalogue pointing at any site.
    public_base_url: OutboundUrl | None = None
    open_data_max_rows: int = Field(default=100_000, ge=1)
    # The public register (services/api/register.py): devices without a registered zone are
    # counted per grid cell of this many degrees (0.01° is about 1.1 km north-south), and a
    # metric counts for a device that reported it within this many days.
    register_grid_deg: float = Field(default=0.01, ge=0.001, le=1.0)
    register_metrics_days: int = Field(default=30, ge=1, le=365)
    # Requests of each route class in flight at once (shared/throttle.py); one more is answered
    # 503 with Retry-After. Open data and exports each take a pool connection for their query:
    # together (7) they leave 3 of the pool's 10 to the operators' other routes. The solver runs
    # in the waste service (a CPU-bound search): two at once keep a core for the rest there.
    max_concurrent_open_data: int = Field(default=4, ge=1)
    max_concurrent_solver: int = Field(default=2, ge=1)
    max_concurrent_exports: int = Field(default=3, ge=1)
    max_concurrent_other: int = Field(default=64, ge=1)
    # HTTP push forwarded to the gateway, which answers within its Kafka time-out (4 s).
    max_concurrent_ingest: int = Field(default=32, ge=1)
    # What a refused client is told to wait: a download or a plan takes seconds.
    capped_retry_after_s: int = Field(default=2, ge=1, le=300)

    # The town's own emission and cost factors (TOWNPULSE_FACTORS, JSON key -> value, e.g. its
    # electricity tariff); the rest from the shipped table (shared/factors, docs/report.md).
    factors: FactorOverrides = Field(default_factory=dict)
    # The monthly report (docs/report.md): made on the 1st for the month before, in each of
    # these languages; checked every report_check_interval_s (an hour: the report is due on the
    # 1st, not at midnight sharp, and a check is one indexed query).
    report_languages: tuple[Literal["fr", "en"], ...] = ("fr", "en")
    report_schedule: bool = True
    report_check_interval_s: float = Field(default=3600.0, ge=1.0, le=86_400.0)
    # A bin collected below this fill was visited too early (the report counts them).
    report_useful_fill_pct: float = Field(default=50.0, ge=0.0, le=100.0)
    # A LoRaWAN link whose median RSSI is below this is counted as weak.
    report_weak_rssi_dbm: float = Field(default=-115.0, ge=-150.0, le=0.0)

    def audit_pseudonym_key_bytes(self) -> bytes:
        if self.audit_pseudonym_key is None:
            return _EPHEMERAL_KEY
        return self.audit_pseudonym_key.get_secret_value().encode()
