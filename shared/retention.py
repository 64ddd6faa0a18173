"""Retention per data class: how long each kind of per-reading or per-event row is kept.

Every table that grows with readings or events belongs to one class, and each class has one
setting (`TOWNPULSE_RETENTION_<CLASS>_DAYS`, 0 = kept for ever). On TimescaleDB the hypertables
and continuous aggregates are pruned by TimescaleDB's retention policies (whole chunks dropped),
which `ensure_policies` keeps in line with the settings; every other table, and every table on
plain PostgreSQL, is pruned by `enforce`, which the storage service runs on a schedule.

The classes and the platform's tables are listed here; each domain's tables join their class
through the domain's manifest (shared/domains.py), so `classes()` is the one full list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString

from psycopg import AsyncConnection, sql
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import domains

log = logging.getLogger(__name__)

# Rows deleted per statement: each batch is its own short transaction, so pruning a backlog
# never holds locks long enough to stall the writers of the same table.
BATCH_ROWS = 10_000

# The age of a row whose device was deleted: the deletion time (NULL while the device lives).
_DELETED_AT = "(SELECT d.deleted_at FROM devices d WHERE d.id = {table}.device_id)"


@dataclass(frozen=True)
class Target:
    """One table of a class: the expression giving a row's age, and which rows may age out."""

    table: str
    age: str
    where: str = "TRUE"
    # On TimescaleDB: a hypertable or continuous aggregate, pruned by a retention policy.
    policy: bool = False

    @property
    def age_sql(self) -> str:
        return self.age.format(table=self.table)


@dataclass(frozen=True)
class DataClass:
    name: str
    description: str
    targets: tuple[Target, ...]


# The classes with the platform's own tables; each domain adds its tables to them (classes()).
PLATFORM_CLASSES: tuple[DataClass, ...] = (
    DataClass(
        "readings",
        "Raw sensor readings, as received, and each uplink's radio link (RSSI, SNR, gateways, "
        "frame counter, codec version).",
        (Target("readings", "ts", policy=True), Target("device_uplinks", "ts")),
    ),
    DataClass(
        "aggregates_hourly",
        "Hourly count/sum/min/max per device and metric.",
        (Target("readings_hourly", "bucket", policy=True),),
    ),
    DataClass(
        "aggregates_daily",
        "Daily count/sum/min/max per device and metric (town's local days).",
        (Target("readings_daily", "bucket", policy=True),),
    ),
    DataClass(
        "scores",
        "One row per reading derived by the models: expected value and anomaly score (energy, "
        "traffic), cleaned fill level (waste).",
        (),
    ),
    DataClass(
        "forecasts",
        "Forecasts, by the time they forecast.",
        (),
    ),
    DataClass(
        "episodes",
        "Anomaly episodes and detected bin collections.",
        (),
    ),
    DataClass(
        "alerts",
        "Resolved alerts with their timelines and technicians' verdicts (open ones are never "
        "pruned).",
        (Target("alerts", "resolved_at", where="state = 'resolved'"),),
    ),
    DataClass(
        "deadletters",
        "Rejected messages with their (truncated) payloads, and the devices heard but not "
        "registered (with their last payload), by when they were last heard.",
        (Target("deadletters", "received_at"), Target("heard_devices", "last_heard")),
    ),
    DataClass(
        "webhook_deliveries",
        "Webhook messages (their bodies) and every delivery attempt, whatever their status.",
        (Target("webhook_outbox", "created_at"),),
    ),
    DataClass(
        "event_outbox",
        "Events waiting for Kafka (normally sent and deleted within seconds).",
        (Target("runtime_outbox", "created_at"),),
    ),
    DataClass(
        "processed_events",
        "Ids of alert events already applied (duplicate detection).",
        (Target("alert_processed_events", "processed_at"),),
    ),
    DataClass(
        "erasure_tombstones",
        "Ids and times of erased devices, so that readings still in Kafka stay erased.",
        (Target("device_erasures", "erased_at"),),
    ),
    DataClass(
        "footprint",
        "Samples of the platform's own CPU time, memory and energy counters, per component "
        "(no device, no person): the monthly report's footprint.",
        (Target("platform_footprint", "ts", policy=True),),
    ),
    DataClass(
        "deleted_device_state",
        "Model state, bin state and activity of devices deleted (without erasure) this long ago.",
        (Target("runtime_state", _DELETED_AT), Target("alert_device_activity", _DELETED_AT)),
    ),
)
# The class whose rows age from their device's deletion, whatever their columns.
DELETED_DEVICE_STATE = "deleted_device_state"


def _domain_target(manifest: domains.DomainManifest, table: domains.Table) -> Target:
    if table.retention == DELETED_DEVICE_STATE:
        return Target(table.name, _DELETED_AT, policy=table.policy)
    if table.age is None:
        raise domains.ManifestError(
            f"{manifest.name}: table {table.name} (retention class {table.retention}) has no age"
        )
    return Target(table.name, table.age, policy=table.policy)


def classes(
    manifests: Sequence[domains.DomainManifest] | None = None,
) -> tuple[DataClass, ...]:
    """Every class with its tables: the platform's and those of each domain's manifest (the
    registered domains by default) that belong to a class; ManifestError on an unknown class."""
    manifests = domains.registered() if manifests is None else manifests
    added: dict[str, list[Target]] = {c.name: [] for c in PLATFORM_CLASSES}
    for manifest in manifests:
        for table in manifest.tables:
            if table.retention is None:
                continue
            if table.retention not in added:
                raise domains.ManifestError(
                    f"{manifest.name}: table {table.name} names no retention class"
                    f" ({table.retention!r}; one of {', '.join(added)})"
                )
            added[table.retention].append(_domain_target(manifest, table))
    return tuple(
        DataClass(c.name, c.description, (*c.targets, *added[c.name])) for c in PLATFORM_CLASSES
    )


class RetentionSettings(BaseSettings):
    """Days each class is kept (0: for ever). TOWNPULSE_RETENTION_READINGS_DAYS=730..."""

    model_config = SettingsConfigDict(
        env_prefix="TOWNPULSE_RETENTION_", frozen=True, extra="ignore"
    )

    # Two years of raw readings: a full year-on-year comparison with margin; after that the
    # hourly and daily aggregates answer every question the services ask.
    readings_days: int = Field(default=730, ge=0, le=36_500)
    aggregates_hourly_days: int = Field(default=1825, ge=0, le=36_500)
    aggregates_daily_days: int = Field(default=0, ge=0, le=36_500)
    # Model outputs are re-derivable from readings and only inspected for recent anomalies.
    scores_days: int = Field(default=180, ge=0, le=36_500)
    forecasts_days: int = Field(default=90, ge=0, le=36_500)
    episodes_days: int = Field(default=730, ge=0, le=36_500)
    alerts_days: int = Field(default=730, ge=0, le=36_500)
    # Dead letters hold whatever a device sent: long enough to debug a device, no longer.
    deadletters_days: int = Field(default=30, ge=0, le=36_500)
    webhook_deliveries_days: int = Field(default=30, ge=0, le=36_500)
    event_outbox_days: int = Field(default=7, ge=0, le=36_500)
    # Must outlast Kafka's retention of the episode topic (7 days): an event re-read from Kafka
    # after its id was pruned would be applied twice.
    processed_events_days: int = Field(default=30, ge=1, le=36_500)
    # Must outlast Kafka's retention of the readings topics (7 days) and any consumer lag.
    erasure_tombstones_days: int = Field(default=30, ge=8, le=36_500)
    deleted_device_state_days: int = Field(default=30, ge=0, le=36_500)
    # A row per component a minute (~70 MB a month): a quarter of them, enough for the
    # monthly report and the previous months' comparison; the reports keep their totals.
    footprint_days: int = Field(default=100, ge=0, le=36_500)

    def days(self, name: str) -> int:
        value: int = getattr(self, f"{name}_days")
        return value


async def _scalar(
    conn: AsyncConnection[Any],
    query: LiteralString | sql.SQL | sql.Composed,
    params: dict[str, Any] | None = None,
) -> Any:
    """The first column of the first row (None without rows), whatever the row factory."""
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


async def backend(conn: AsyncConnection[Any]) -> str:
    value = await _scalar(conn, "SELECT value FROM storage_info WHERE key = 'backend'")
    return str(value or "postgres")


def _by_policy(target: Target, backend_name: str) -> bool:
    return target.policy and backend_name == "timescaledb"


async def _is_hypertable_or_cagg(conn: AsyncConnection[Any], table: str) -> bool:
    return bool(
        await _scalar(
            conn,
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables"
            "               WHERE hypertable_name = %(t)s)"
            " OR EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates"
            "            WHERE view_name = %(t)s)",
            {"t": table},
        )
    )


async def _policy_days(conn: AsyncConnection[Any], table: str) -> int | None:
    """The retention policy's period on a hypertable or continuous aggregate, if it has one."""
    days = await _scalar(
        conn,
        """
        SELECT extract(epoch FROM (j.config->>'drop_after')::interval) / 86400 AS days
        FROM timescaledb_information.jobs j
        WHERE j.proc_name = 'policy_retention'
          AND (j.hypertable_name = %(t)s OR j.hypertable_name = (
               SELECT materialization_hypertable_name
               FROM timescaledb_information.continuous_aggregates WHERE view_name = %(t)s))
        """,
        {"t": table},
    )
    return None if days is None else round(float(days))


async def ensure_policies(conn: AsyncConnection[Any], settings: RetentionSettings) -> None:
    """Make TimescaleDB's retention policies match the settings (no-op on plain PostgreSQL)."""
    if await backend(conn) != "timescaledb":
        return
    for data_class in classes():
        days = settings.days(data_class.name)
        for target in data_class.targets:
            if not target.policy or not await _is_hypertable_or_cagg(conn, target.table):
                continue
            current = await _policy_days(conn, target.table)
            if current == (days or None):
                continue
            log.info("retention policy of %s: %s -> %s days", target.table, current, days)
            # Policies are the owner's: the maintenance role asks a function that does only
            # this (shared/migrations/versions/0009_roles.py).
            await conn.execute(
                "SELECT townpulse_set_retention_policy(%s::regclass, %s)", (target.table, days)
            )


async def _drop_old_partitions(conn: AsyncConnection[Any], cutoff: datetime) -> int:
    """Plain PostgreSQL: drop whole monthly partitions of readings older than the cutoff."""
    cur = await conn.execute(
        """
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'readings'
        """
    )
    dropped = 0
    for row in await cur.fetchall():
        name = next(iter(row.values())) if isinstance(row, dict) else row[0]
        # Partition names are readings_YYYYmMM (townpulse_ensure_partition); a month ends
        # before the first instant of the next one.
        year, month = int(name[9:13]), int(name[14:16])
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        if end <= cutoff:
            log.info("dropping partition %s (retention)", name)
            # Dropping is the owner's: a function that drops partitions of readings only.
            await conn.execute("SELECT townpulse_drop_readings_partition(%s)", (name,))
            dropped += 1
    return dropped


async def _delete_older(
    conn: AsyncConnection[Any], target: Target, cutoff: datetime, *, partitioned: bool
) -> int:
    cond = sql.SQL("{age} < %(cutoff)s AND ({where})").format(
        age=sql.SQL(target.age_sql), where=sql.SQL(target.where)
    )
    table = sql.Identifier(target.table)
    if partitioned:
        # ctid is not unique across partitions: one statement, bounded by the partition drops
        # that ran before it (at most one month is left to delete row by row).
        cur = await conn.execute(
            sql.SQL("DELETE FROM {t} WHERE {c}").format(t=table, c=cond), {"cutoff": cutoff}
        )
        await conn.commit()
        return cur.rowcount
    total = 0
    while True:
        cur = await conn.execute(
            sql.SQL(
                "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {c} LIMIT {n}))"
            ).format(t=table, c=cond, n=sql.Literal(BATCH_ROWS)),
            {"cutoff": cutoff},
        )
        await conn.commit()
        total += cur.rowcount
        if cur.rowcount < BATCH_ROWS:
            return total


async def enforce(
    conn: AsyncConnection[Any], settings: RetentionSettings, *, now: datetime | None = None
) -> dict[str, int]:
    """Delete what every class has kept too long (what policies do not); rows deleted per table.

    `conn` must not be in a transaction: each batch commits on its own.
    """
    now = now or datetime.now(UTC)
    backend_name = await backend(conn)
    await conn.commit()
    deleted: dict[str, int] = {}
    for data_class in classes():
        days = settings.days(data_class.name)
        if not days:
            continue
        cutoff = now - timedelta(days=days)
        for target in data_class.targets:
            if _by_policy(target, backend_name):
                continue
            partitioned = target.table == "readings"
            n = await _drop_old_partitions(conn, cutoff) if partitioned else 0
            n += await _delete_older(conn, target, cutoff, partitioned=partitioned)
            if n:
                log.info("retention: %s rows/partitions removed from %s", n, target.table)
            deleted[target.table] = n
    return deleted


def _enforcer(by_policy: list[bool]) -> str:
    """Who prunes a class whose tables are (True) or are not (False) pruned by a policy.

    >>> _enforcer([True]), _enforcer([False])
    ('timescaledb retention policy', 'storage service job')
    >>> _enforcer([True, False])
    'timescaledb retention policy and storage service job'
    """
    if all(by_policy):
        return "timescaledb retention policy"
    if any(by_policy):
        return "timescaledb retention policy and storage service job"
    return "storage service job"


async def report(conn: AsyncConnection[Any], settings: RetentionSettings) -> list[dict[str, Any]]:
    """Each class: its period, how it is enforced, and the oldest row kept in each table."""
    backend_name = await backend(conn)
    out: list[dict[str, Any]] = []
    for data_class in classes():
        tables = []
        for target in data_class.targets:
            oldest = await _scalar(
                conn,
                sql.SQL("SELECT min({age}) AS oldest FROM {t} WHERE {where}").format(
                    age=sql.SQL(target.age_sql),
                    t=sql.Identifier(target.table),
                    where=sql.SQL(target.where),
                ),
            )
            tables.append({"table": target.table, "oldest": oldest})
        oldest_all = [t["oldest"] for t in tables if t["oldest"] is not None]
        days = settings.days(data_class.name)
        by_policy = [_by_policy(t, backend_name) for t in data_class.targets]
        out.append(
            {
                "name": data_class.name,
                "description": data_class.description,
                "days": days or None,
                "enforced_by": "kept" if not days else _enforcer(by_policy),
                "oldest": min(oldest_all) if oldest_all else None,
                "tables": tables,
            }
        )
    return out
