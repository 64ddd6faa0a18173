"""The platform's own footprint over a period: CPU time and memory per component (sampled by
the watch, townpulse/watch/footprint.py), converted to kWh and CO2e with the factor table.

Energy, over the sampled span of the period (never extrapolated; `coverage` says how much of
the period that is):
- the power model: the server's idle power times the platform's share of the server, plus
  watts per busy core times the core-hours the components used, plus watts per GB of memory
  times the memory they held (Cloud Carbon Footprint's coefficients, shared/factors);
- or, where the machine exposes RAPL counters for the whole span, the energy they counted
  (CPU packages and DRAM: not the disks, fans or power supply) times that share.
CO2e: the kWh times the grid's factor, plus the server's manufacture amortised over its
lifetime, the platform's share of it for the span.

    >>> from shared.factors import load_factors
    >>> f = load_factors({"server_idle_w": 20, "server_w_per_busy_core": 5,
    ...                   "server_w_per_gb_memory": 0.5, "server_platform_share": 1})
    >>> e = energy(hours=10, core_hours=2, memory_gb=4, rapl_kwh=None, factors=f)
    >>> round(e.kwh, 6), e.source   # (20 W x 10 h + 5 W x 2 h + 0.5 W/GB x 4 GB x 10 h) / 1000
    (0.23, 'model')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from shared.factors import Factors

# A report is for a month, a quarter, a year at most.
MAX_PERIOD = timedelta(days=366)
HOURS_PER_YEAR = 8766.0  # 365.25 days
UJ_PER_KWH = 3.6e12
GB = 1e9
# RAPL counters wrap (at max_energy_range_uj, some minutes at full power on a large server): a
# gap between samples longer than this may hide a second wrap, so its energy is not counted.
RAPL_MAX_GAP_S = 600.0
# RAPL stands in for the model only if its counted span is nearly all of the sampled span.
RAPL_MIN_SHARE = 0.95

# Each component's usage between consecutive samples: a counter's increase while its main
# process stays the same (`started_at`); all of a new one's counter when it started after the
# previous sample (it began at 0 then); nothing when that cannot be told (a counter that went
# down while the process stayed, e.g. a child that left the tree). Memory as sampled.
COMPONENTS = """
WITH s AS (
    SELECT component, ts, cpu_s, rss_bytes, started_at,
           lag(ts) OVER w AS prev_ts, lag(cpu_s) OVER w AS prev_cpu,
           lag(started_at) OVER w AS prev_started
    FROM platform_footprint
    WHERE ts >= %(start)s AND ts < %(end)s AND source <> 'rapl'
    WINDOW w AS (PARTITION BY component ORDER BY ts)
)
SELECT component,
       coalesce(sum(CASE
           WHEN prev_ts IS NULL THEN 0
           WHEN started_at IS NOT DISTINCT FROM prev_started THEN greatest(cpu_s - prev_cpu, 0)
           WHEN started_at > prev_ts THEN cpu_s
           ELSE 0 END), 0) AS cpu_s,
       avg(rss_bytes)::float8 AS mean_rss_bytes,
       max(rss_bytes) AS peak_rss_bytes,
       count(*) AS samples,
       min(ts) AS first_ts,
       max(ts) AS last_ts
FROM s GROUP BY component ORDER BY component
"""

# The machine's RAPL counters: each increase, across a wrap, between samples close enough.
RAPL = """
WITH s AS (
    SELECT component, ts, energy_uj, energy_range_uj,
           lag(ts) OVER w AS prev_ts, lag(energy_uj) OVER w AS prev_uj
    FROM platform_footprint
    WHERE ts >= %(start)s AND ts < %(end)s AND source = 'rapl'
    WINDOW w AS (PARTITION BY component ORDER BY ts)
)
SELECT component,
       coalesce(sum(CASE WHEN energy_uj >= prev_uj THEN energy_uj - prev_uj
                         ELSE energy_uj + energy_range_uj - prev_uj END)::float8, 0) AS uj,
       coalesce(sum(extract(epoch FROM ts - prev_ts))::float8, 0) AS counted_s
FROM s
WHERE prev_ts IS NOT NULL AND extract(epoch FROM ts - prev_ts) <= %(max_gap)s
GROUP BY component ORDER BY component
"""


@dataclass(frozen=True)
class ComponentFootprint:
    component: str
    cpu_s: float
    mean_rss_bytes: float
    peak_rss_bytes: int
    samples: int


@dataclass(frozen=True)
class Energy:
    kwh: float
    source: str  # "model" or "rapl"
    kwh_idle: float
    kwh_cpu: float
    kwh_memory: float
    kwh_rapl: float | None


@dataclass(frozen=True)
class Footprint:
    start: datetime
    end: datetime
    factors_version: str
    components: list[ComponentFootprint]
    # The sampled span (first to last sample in the period), and its share of the period.
    sampled_hours: float
    coverage: float
    cpu_core_hours: float
    mean_memory_bytes: float
    energy: Energy
    kwh: float
    kg_co2e_energy: float
    kg_co2e_manufacture: float
    kg_co2e_total: float
    # Each figure's formula and the factor keys it uses (the report's footnotes).
    method: dict[str, str] = field(default_factory=dict)


def energy(
    *, hours: float, core_hours: float, memory_gb: float, rapl_kwh: float | None, factors: Factors
) -> Energy:
    """kWh over `hours`: RAPL's when given (times the platform's share), else the model's."""
    share = factors["server_platform_share"].value
    idle = factors["server_idle_w"].value * share * hours / 1000
    cpu = factors["server_w_per_busy_core"].value * core_hours / 1000
    memory = factors["server_w_per_gb_memory"].value * memory_gb * hours / 1000
    if rapl_kwh is not None:
        return Energy(rapl_kwh * share, "rapl", idle, cpu, memory, rapl_kwh)
    return Energy(idle + cpu + memory, "model", idle, cpu, memory, None)


def manufacture_kg(*, hours: float, factors: Factors) -> float:
    """The platform's share of the server's manufacture, amortised over its lifetime."""
    lifetime_h = factors["server_lifetime_years"].value * HOURS_PER_YEAR
    share = factors["server_platform_share"].value
    return factors["server_manufacture_kg_co2e"].value * share * hours / lifetime_h


def rapl_delta(before: int, after: int, *, wrap: int) -> int:
    """A RAPL counter's increase between two readings, across one wrap.

    >>> rapl_delta(100, 250, wrap=1000), rapl_delta(900, 50, wrap=1000)
    (150, 150)
    """
    return after - before if after >= before else after + wrap - before


def check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the period's bounds need a time zone")
    if not start < end:
        raise ValueError("the period must end after it starts")
    if end - start > MAX_PERIOD:
        raise ValueError(f"a period of at most {MAX_PERIOD.days} days")


def compute(
    *,
    start: datetime,
    end: datetime,
    components: list[dict[str, Any]],
    rapl: list[dict[str, Any]],
    factors: Factors,
) -> Footprint:
    """The footprint from the query's rows (COMPONENTS, RAPL): pure arithmetic."""
    period_h = (end - start).total_seconds() / 3600
    firsts = [r["first_ts"] for r in components]
    lasts = [r["last_ts"] for r in components]
    sampled_h = (max(lasts) - min(firsts)).total_seconds() / 3600 if components else 0.0
    per = [
        ComponentFootprint(
            component=r["component"],
            cpu_s=float(r["cpu_s"]),
            mean_rss_bytes=float(r["mean_rss_bytes"] or 0),
            peak_rss_bytes=int(r["peak_rss_bytes"] or 0),
            samples=int(r["samples"]),
        )
        for r in components
    ]
    core_hours = sum(c.cpu_s for c in per) / 3600
    memory = sum(c.mean_rss_bytes for c in per)
    rapl_kwh = None
    # Every RAPL domain must have counted (nearly) the whole sampled span to stand in for it.
    if (
        rapl
        and sampled_h > 0
        and all(r["counted_s"] >= RAPL_MIN_SHARE * sampled_h * 3600 for r in rapl)
    ):
        rapl_kwh = sum(float(r["uj"]) for r in rapl) / UJ_PER_KWH
    e = energy(
        hours=sampled_h,
        core_hours=core_hours,
        memory_gb=memory / GB,
        rapl_kwh=rapl_kwh,
        factors=factors,
    )
    grid = factors["grid_kg_co2e_per_kwh"].value
    kg_energy = e.kwh * grid
    kg_manufacture = manufacture_kg(hours=sampled_h, factors=factors)
    return Footprint(
        start=start,
        end=end,
        factors_version=factors.version,
        components=per,
        sampled_hours=sampled_h,
        coverage=min(sampled_h / period_h, 1.0) if period_h > 0 else 0.0,
        cpu_core_hours=core_hours,
        mean_memory_bytes=memory,
        energy=e,
        kwh=e.kwh,
        kg_co2e_energy=kg_energy,
        kg_co2e_manufacture=kg_manufacture,
        kg_co2e_total=kg_energy + kg_manufacture,
        method=method(e.source),
    )


def method(source: str) -> dict[str, str]:
    """Each figure's formula, with the factor keys it uses, for the report's footnotes."""
    energy_method = (
        "RAPL: the energy the machine's own counters measured (CPU packages and DRAM; not "
        "disks, fans or power supply) over the sampled span x server_platform_share"
        if source == "rapl"
        else "power model over the sampled span: server_idle_w x server_platform_share x hours"
        " + server_w_per_busy_core x cpu_core_hours + server_w_per_gb_memory x mean memory"
        " (GB) x hours; / 1000"
    )
    return {
        "cpu_s": "per component: CPU seconds (user + system) of its processes between the first"
        " and last sample of the period, from /proc (their reaped children included) or its"
        " systemd cgroup; a restart counts the new process's time from its start",
        "memory": "per component: resident memory at each sample (private pages of each process"
        " plus the largest shared set among them), mean and peak over the samples",
        "coverage": "span from the first to the last sample in the period / the period; every"
        " figure is for that span, not extrapolated",
        "cpu_core_hours": "sum of the components' cpu_s / 3600",
        "kwh": energy_method,
        "kg_co2e_energy": "kwh x grid_kg_co2e_per_kwh",
        "kg_co2e_manufacture": "server_manufacture_kg_co2e x server_platform_share x sampled"
        " hours / (server_lifetime_years x 8766 h)",
        "kg_co2e_total": "kg_co2e_energy + kg_co2e_manufacture",
    }


async def footprint_for(
    conn: AsyncConnection[Any], *, start: datetime, end: datetime, factors: Factors
) -> Footprint:
    """The platform's footprint over [start, end) from the stored samples (ValueError for a
    period without time zone, empty, or longer than MAX_PERIOD)."""
    check_period(start, end)
    params = {"start": start, "end": end, "max_gap": RAPL_MAX_GAP_S}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(COMPONENTS, params)
        components = await cur.fetchall()
        await cur.execute(RAPL, params)
        rapl = await cur.fetchall()
    return compute(start=start, end=end, components=components, rapl=rapl, factors=factors)
