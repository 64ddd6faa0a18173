"""Writing batches to PostgreSQL: COPY into a temporary table, then one idempotent INSERT.

A reading is identified by (device, metric, ts): `ON CONFLICT DO NOTHING` makes a redelivered
batch (offsets not committed before a crash) a no-op. On plain PostgreSQL the hourly and daily
rollups are updated from exactly the rows that were inserted, in the same statement, so they
never count a duplicate; the daily rollup's days are the town's (`TOWNPULSE_TIMEZONE`, the zone
the database records: shared/townzone.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiokafka import TopicPartition
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from shared.deadletters import write_deadletters
from shared.erasure import exclude_erasures
from shared.schemas import DeadLetter, ReadingBatch

CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging_readings (
    device_id text, metric text, ts timestamptz, value double precision, unit text,
    received_at timestamptz
) ON COMMIT DELETE ROWS
"""

# Readings received before their device was erased (still in Kafka, or re-read) stay erased.
INSERT_READINGS = """
INSERT INTO readings (device_id, metric, ts, value, unit, received_at)
SELECT s.device_id, s.metric, s.ts, s.value, s.unit, s.received_at FROM staging_readings s
WHERE NOT EXISTS (
    SELECT 1 FROM device_erasures e WHERE e.device_id = s.device_id AND e.erased_at >= s.received_at
)
ON CONFLICT DO NOTHING
"""

# Data-modifying CTEs: both rollups see exactly the rows this statement inserted.
INSERT_READINGS_WITH_ROLLUPS = f"""
WITH ins AS (
    {INSERT_READINGS}
    RETURNING device_id, metric, ts, value
), hourly AS (
    INSERT INTO readings_hourly AS r (device_id, metric, bucket, n, total, min, max)
    SELECT device_id, metric, date_trunc('hour', ts), count(*), sum(value), min(value), max(value)
    FROM ins GROUP BY 1, 2, 3
    ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
        n = r.n + EXCLUDED.n, total = r.total + EXCLUDED.total,
        min = LEAST(r.min, EXCLUDED.min), max = GREATEST(r.max, EXCLUDED.max)
    RETURNING 1
), daily AS (
    INSERT INTO readings_daily AS r (device_id, metric, bucket, n, total, min, max)
    SELECT device_id, metric, date_trunc('day', ts, %(zone)s::text),
           count(*), sum(value), min(value), max(value)
    FROM ins GROUP BY 1, 2, 3
    ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
        n = r.n + EXCLUDED.n, total = r.total + EXCLUDED.total,
        min = LEAST(r.min, EXCLUDED.min), max = GREATEST(r.max, EXCLUDED.max)
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS inserted
"""


# One row per uplink that came through a network server or a device's own format.
INSERT_UPLINKS = """
INSERT INTO device_uplinks (device_id, ts, source, f_port, f_cnt, codec, codec_version, rssi, snr,
                            gateways, received_at)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::int[], %s::bigint[], %s::text[],
                     %s::int[], %s::float8[], %s::float8[], %s::int[], %s::timestamptz[])
ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class WriteResult:
    offered: int
    inserted: int
    deadletters: int


class Writer:
    """Writes one consumed batch inside the caller's transaction."""

    def __init__(self, *, maintain_rollups: bool, timezone: str) -> None:
        self._maintain_rollups = maintain_rollups
        self._zone = timezone
        self._known_partitions: set[tuple[int, int]] = set()

    async def write(
        self,
        conn: AsyncConnection[DictRow],
        *,
        batches: list[ReadingBatch],
        deadletters: list[tuple[TopicPartition, int, DeadLetter]],
    ) -> WriteResult:
        offered = 0
        inserted = 0
        if batches:
            if self._maintain_rollups:
                await self._ensure_partitions(conn, batches)
            await conn.execute(CREATE_STAGING)
            async with conn.cursor().copy(
                "COPY staging_readings (device_id, metric, ts, value, unit, received_at) FROM STDIN"
            ) as copy:
                for b in batches:
                    for r in b.readings:
                        await copy.write_row(
                            (b.device_id, r.metric, r.ts, r.value, r.unit, b.received_at)
                        )
                        offered += 1
            # Taken as late as possible: an erasure waits for this transaction to end.
            await exclude_erasures(conn)
            if self._maintain_rollups:
                cur = await conn.execute(INSERT_READINGS_WITH_ROLLUPS, {"zone": self._zone})
                row = await cur.fetchone()
                inserted = int(row["inserted"]) if row else 0
            else:
                cur = await conn.execute(INSERT_READINGS)
                inserted = cur.rowcount
            uplinks = [(b, b.uplink) for b in batches if b.uplink is not None]
            if uplinks:
                await conn.execute(
                    INSERT_UPLINKS,
                    [
                        [b.device_id for b, _ in uplinks],
                        [u.ts for _, u in uplinks],
                        [u.source for _, u in uplinks],
                        [u.f_port for _, u in uplinks],
                        [u.f_cnt for _, u in uplinks],
                        [u.codec for _, u in uplinks],
                        [u.codec_version for _, u in uplinks],
                        [u.rssi for _, u in uplinks],
                        [u.snr for _, u in uplinks],
                        [u.gateways for _, u in uplinks],
                        [b.received_at for b, _ in uplinks],
                    ],
                )
        if deadletters:
            await write_deadletters(conn, deadletters)
        return WriteResult(offered=offered, inserted=inserted, deadletters=len(deadletters))

    def forget_partitions(self) -> None:
        """After a rollback: partitions created in it are gone, so check again next time."""
        self._known_partitions.clear()

    async def _ensure_partitions(
        self, conn: AsyncConnection[DictRow], batches: list[ReadingBatch]
    ) -> None:
        months: dict[tuple[int, int], datetime] = {}
        for b in batches:
            for r in b.readings:
                utc = r.ts.utctimetuple()
                months.setdefault((utc.tm_year, utc.tm_mon), r.ts)
        for key, ts in months.items():
            if key not in self._known_partitions:
                await conn.execute("SELECT townpulse_ensure_partition(%s)", (ts,))
                self._known_partitions.add(key)
