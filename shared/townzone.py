"""The town's time zone (`TOWNPULSE_TIMEZONE`): where its days begin, for every daily figure.

One setting decides every day boundary: the models' calendar, the energy day summary, the waste
round's day, the reports' months, the console's dates, and the daily rollup `readings_daily`.

The daily rollup is the one place where the zone is not a query parameter. On TimescaleDB it is
a continuous aggregate whose `time_bucket('1 day', ts, <zone>)` is part of the view's
definition, and on plain PostgreSQL it is a table whose rows the storage service bucketed as
they came. Its days cannot be rebuilt from anything finer once the raw readings are gone (the
daily rollup is kept for ever, the readings two years, the hourly rollup five, and an hourly
rollup could not give the days of a zone with a half-hour offset anyway). So the zone of its
days is fixed with the database and recorded in `storage_info` ('timezone'):

- `ensure_rollup_zone`, run by every migration (`shared.db.migrate`, so at each `townpulse up`)
  with the owner's rights: on a database that holds no reading yet, the rollup is rebuilt in
  the configured zone (the view recreated with the same grants, real-time aggregation and
  policies); on one that holds readings in another zone, it refuses with what to do, rather
  than mix two kinds of days in one table;
- `check_rollup_zone`, run when the services that read or write the rollup start (storage,
  the operator API): a setting that disagrees with the database stops them with the same
  message instead of serving days of the wrong zone.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection, Connection, sql
from pydantic import AfterValidator, SecretStr

DEFAULT_ZONE = "Europe/Paris"
# The zone the first migration (0001) built the daily rollup in.
INITIAL_ROLLUP_ZONE = "Europe/Paris"
# IANA names only ("Area/Location", "UTC", "Etc/GMT+3"): no POSIX TZ strings, no paths.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")


def check_timezone(name: str) -> str:
    """`name` if it is an IANA time zone, else ValueError saying what is expected.

    >>> check_timezone("Asia/Tokyo")
    'Asia/Tokyo'
    >>> check_timezone("Europe/Pariss")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown time zone 'Europe/Pariss': an IANA name such as Europe/Paris, ...
    """
    try:
        if not _NAME.fullmatch(name):
            raise ValueError(name)
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(
            f"unknown time zone {name!r}: an IANA name such as Europe/Paris, America/New_York "
            "or Asia/Kolkata (the tz database's Area/Location)"
        ) from None
    return name


# The setting's type: an unknown zone stops a service at start-up (pydantic's error names the
# setting), not with a 500 at the first daily query.
TownZone = Annotated[str, AfterValidator(check_timezone)]


def today(zone: str, now: datetime | None = None) -> date:
    """The town's date at `now` (default: now).

    >>> today("Asia/Tokyo", datetime(2026, 3, 1, 15, 30, tzinfo=UTC))
    datetime.date(2026, 3, 2)
    """
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(zone)).date()


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The town's `day` as [start, end) in UTC: 23 or 25 hours long on a change of clocks.

    >>> [t.isoformat() for t in day_bounds(date(2026, 3, 29), "Europe/Paris")]
    ['2026-03-28T23:00:00+00:00', '2026-03-29T22:00:00+00:00']
    """
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tz)
    end = datetime.combine(day + timedelta(days=1), time(), tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def bin_origin(zone: str) -> datetime:
    """An origin for `date_bin`: the town's midnight on 2000-01-01, so that bins of an hour or
    more start on the town's hours (Kolkata's hours are on the half hour of UTC's).

    >>> bin_origin("Asia/Kolkata").isoformat()
    '1999-12-31T18:30:00+00:00'
    """
    return datetime.combine(date(2000, 1, 1), time(), ZoneInfo(zone)).astimezone(UTC)


class TownZoneError(RuntimeError):
    """The town's zone cannot be used: what to do is in the message (no traceback needed)."""


class RollupZoneMismatch(TownZoneError):
    """The database's daily rollup has days of another zone than the setting."""


def mismatch_message(*, recorded: str, configured: str) -> str:
    return (
        f"TOWNPULSE_TIMEZONE is {configured!r} but this database's daily rollup "
        f"(readings_daily) holds days of {recorded!r}, and it already holds readings: set "
        f"TOWNPULSE_TIMEZONE={recorded} again, or start the town on an empty database "
        "(docs/operations.md, 'The town's time zone')"
    )


_RECORDED = "SELECT value FROM storage_info WHERE key = 'timezone'"


async def check_rollup_zone(database_url: SecretStr, zone: str) -> None:
    """RollupZoneMismatch unless the database's days are `zone`'s: for the services that read
    or write the daily rollup, at start-up (on a connection of its own, before their pools)."""
    async with await AsyncConnection.connect(database_url.get_secret_value()) as conn:
        cur = await conn.execute(_RECORDED)
        row = await cur.fetchone()
    if row is None:
        return  # a database older than migration 0013: its services are older too
    if row[0] != zone:
        raise RollupZoneMismatch(mismatch_message(recorded=row[0], configured=zone))


# ---- the migrations' side (owner's rights, one transaction) ------------------------------------

TIMESCALE_DAILY = """
CREATE MATERIALIZED VIEW readings_daily WITH (timescaledb.continuous) AS
SELECT device_id, metric, time_bucket('1 day', ts, {zone}) AS bucket,
       count(*) AS n, sum(value) AS total, min(value) AS min, max(value) AS max
FROM readings GROUP BY device_id, metric, time_bucket('1 day', ts, {zone}) WITH NO DATA;
ALTER MATERIALIZED VIEW readings_daily SET (timescaledb.materialized_only = false);
"""

_MATERIALIZATION = """
SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name)
FROM timescaledb_information.continuous_aggregates WHERE view_name = 'readings_daily'
"""

# Who may do what on a relation, as GRANT statements (its owner's own rights excepted).
_GRANTS = """
SELECT a.privilege_type, r.rolname
FROM pg_class c, aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = %s::regclass AND a.grantee <> c.relowner
ORDER BY 2, 1
"""

# A continuous aggregate's policies name the view (TimescaleDB 2.28) or, in older releases,
# its materialisation.
_JOBS = """
SELECT j.proc_name, j.schedule_interval, j.config
FROM timescaledb_information.jobs j JOIN timescaledb_information.continuous_aggregates c
  ON j.hypertable_name IN (c.view_name, c.materialization_hypertable_name)
WHERE c.view_name = 'readings_daily'
  AND j.proc_name IN ('policy_refresh_continuous_aggregate', 'policy_retention')
ORDER BY j.proc_name
"""


def ensure_rollup_zone(conn: Connection[Any], zone: str) -> str:
    """Make the daily rollup's days `zone`'s, or refuse (RollupZoneMismatch) when it holds days
    of another zone with readings; the zone recorded. For migrations: the owner's connection,
    in their transaction."""
    if conn.execute("SELECT 1 FROM pg_timezone_names WHERE name = %s", (zone,)).fetchone() is None:
        raise ValueError(f"PostgreSQL does not know the time zone {zone!r} (pg_timezone_names)")
    row = conn.execute(_RECORDED).fetchone()
    recorded = row[0] if row else INITIAL_ROLLUP_ZONE
    if recorded == zone:
        return zone
    held = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM readings) OR EXISTS (SELECT 1 FROM readings_daily)"
    ).fetchone()
    if held and held[0]:
        raise RollupZoneMismatch(mismatch_message(recorded=recorded, configured=zone))
    backend = conn.execute("SELECT value FROM storage_info WHERE key = 'backend'").fetchone()
    if backend and backend[0] == "timescaledb":
        _rebuild_timescale_daily(conn, zone)
    # On plain PostgreSQL the rollup is a table the storage service fills with the setting's
    # days (services/storage/adapters/writer.py): an empty one needs nothing but the record.
    conn.execute(
        "INSERT INTO storage_info VALUES ('timezone', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        (zone,),
    )
    return zone


def _rebuild_timescale_daily(conn: Connection[Any], zone: str) -> None:
    """Recreate the (empty) continuous aggregate in `zone`, with the grants on the view and on
    its materialisation, and the refresh and retention policies, that the old one had."""
    old_mat = conn.execute(_MATERIALIZATION).fetchone()
    assert old_mat is not None, "readings_daily is not a continuous aggregate"
    grants = {
        "view": conn.execute(_GRANTS, ("readings_daily",)).fetchall(),
        "mat": conn.execute(_GRANTS, (old_mat[0],)).fetchall(),
    }
    jobs = conn.execute(_JOBS).fetchall()
    conn.execute("DROP MATERIALIZED VIEW readings_daily")
    conn.execute(sql.SQL(TIMESCALE_DAILY).format(zone=sql.Literal(zone)))
    new_mat = conn.execute(_MATERIALIZATION).fetchone()
    assert new_mat is not None
    for target, rel in (("view", "readings_daily"), ("mat", new_mat[0])):
        for privilege, role in grants[target]:
            conn.execute(
                sql.SQL("GRANT {} ON {} TO {}").format(
                    sql.SQL(privilege), sql.SQL(rel), sql.Identifier(role)
                )
            )
    for proc, schedule, config in jobs:
        if proc == "policy_refresh_continuous_aggregate":
            conn.execute(
                "SELECT add_continuous_aggregate_policy('readings_daily',"
                " start_offset => %s::interval, end_offset => %s::interval,"
                " schedule_interval => %s)",
                (config["start_offset"], config["end_offset"], schedule),
            )
        else:
            conn.execute(
                "SELECT add_retention_policy('readings_daily', drop_after => %s::interval)",
                (config["drop_after"],),
            )
