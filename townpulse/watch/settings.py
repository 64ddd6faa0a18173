"""The watch's thresholds: settings with the TOWNPULSE_ prefix, so a town (or a test) moves them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from townpulse.stack.config import REPO


class WatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOWNPULSE_", frozen=True, extra="ignore")

    run_dir: Path = REPO / ".run"
    kafka_bootstrap: str = "127.0.0.1:19092"
    # The broker's TLS listener: its certificate is read from the handshake when its file is
    # not readable (the systemd unit runs the watch as `townpulse`, the file is mosquitto's).
    mqtts_port: int = 18883
    # Once a minute: every condition here develops over hours or days.
    watch_interval_s: float = Field(default=60.0, gt=0, le=3600)
    # Who restarts the services, and so who counts their restarts: the local stack's keepers
    # (pids/*.keeper.json) or systemd (NRestarts of each unit).
    watch_supervisor: Literal["keeper", "systemd"] = "keeper"

    # Disk use of the filesystem under each data directory, in percent.
    disk_warn_pct: float = Field(default=85.0, gt=0, le=100)
    disk_critical_pct: float = Field(default=95.0, gt=0, le=100)
    # Or: full within this many days at the growth rate of the last `disk_rate_window_h` hours.
    disk_warn_days: float = Field(default=14.0, ge=0)
    disk_critical_days: float = Field(default=3.0, ge=0)
    disk_rate_window_h: float = Field(default=24.0, gt=0)
    # A rate measured over less than this says little (one compaction, one checkpoint).
    disk_rate_min_span_h: float = Field(default=1.0, ge=0)

    # The daily backup runs at a random time in its day (the timer): 26 h leaves it slack.
    backup_max_age_h: float = Field(default=26.0, gt=0)
    backup_critical_age_h: float = Field(default=72.0, gt=0)
    # No backup at all: a warning once the stack has run this long (from the watch's first run).
    backup_grace_h: float = Field(default=26.0, ge=0)

    cert_warn_days: float = Field(default=30.0, ge=0)
    cert_critical_days: float = Field(default=7.0, ge=0)

    # More restarts than this within an hour: a service that cannot stay up.
    restarts_per_hour: int = Field(default=5, ge=0)

    # The platform's own footprint (townpulse/watch/footprint.py): CPU time and memory of each
    # component, sampled into the database as the watch's own role. Unset: not sampled.
    database_url: SecretStr | None = None
    # CPU time is read as counters, exact whatever the interval; memory (mean, peak) is only
    # seen at the samples. A minute: a row per component each time, ~12 rows (1.3 kB) a minute.
    footprint_interval_s: float = Field(default=60.0, ge=1, le=3600)
