"""Every figure of the report, each from one named query (the appendix prints them).

The figures are plain JSON (numbers, strings, lists): stored with the report, shown by the
console page, reconciled by the tests against the same quantities computed their own way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from services.api.reports.period import Period

Conn = AsyncConnection[DictRow]

# How many buildings and counters the report names (the rest are in the per-device tables).
TOP = 5

# name -> SQL. Parameters: start, end (instants), start_day, end_day (local dates), and the
# thresholds named in each query. The appendix prints each with its method.
QUERIES: dict[str, LiteralString] = {
    "energy_buildings": """
SELECT s.device_id, coalesce(d.name, s.device_id) AS name,
       sum(s.observed) AS consumed_kwh, sum(s.expected) AS expected_kwh
FROM energy_scores s LEFT JOIN devices d ON d.id = s.device_id
WHERE s.ts >= %(start)s AND s.ts < %(end)s
GROUP BY s.device_id, d.name ORDER BY s.device_id""",
    "energy_anomalies": """
SELECT e.device_id, coalesce(d.name, e.device_id) AS name, count(*) AS episodes
FROM energy_episodes e LEFT JOIN devices d ON d.id = e.device_id
WHERE e.started_at >= %(start)s AND e.started_at < %(end)s
GROUP BY e.device_id, d.name ORDER BY e.device_id""",
    "energy_excess": """
SELECT s.device_id, coalesce(d.name, s.device_id) AS name,
       sum(greatest(s.observed - s.expected, 0)) AS excess_kwh
FROM energy_scores s LEFT JOIN devices d ON d.id = s.device_id
WHERE s.ts >= %(start)s AND s.ts < %(end)s AND s.is_anomaly
GROUP BY s.device_id, d.name ORDER BY excess_kwh DESC, s.device_id""",
    "waste_plans": """
SELECT day, km, every_bin_km, bins, every_bins, fixed_visits_per_week, rounds_per_week
FROM waste_plans WHERE day >= %(start_day)s AND day < %(end_day)s ORDER BY day""",
    "waste_collections": """
SELECT count(*) AS collections,
       count(*) FILTER (WHERE level_before >= %(overflow_pct)s) AS overflows,
       count(*) FILTER (WHERE level_before < %(useful_fill_pct)s) AS low_fill
FROM waste_collections WHERE ts >= %(start)s AND ts < %(end)s""",
    "traffic_counters": """
SELECT t.device_id, coalesce(d.name, t.device_id) AS name,
       count(*) FILTER (WHERE t.kind = 'traffic.incident') AS incidents,
       coalesce(sum(greatest(extract(epoch FROM
           least(coalesce(t.ended_at, %(end)s), %(end)s) - t.started_at), 0) / 3600.0)
           FILTER (WHERE t.kind = 'traffic.congestion'), 0) AS congestion_h
FROM traffic_episodes t LEFT JOIN devices d ON d.id = t.device_id
WHERE t.started_at >= %(start)s AND t.started_at < %(end)s
GROUP BY t.device_id, d.name ORDER BY t.device_id""",
    # The lighting service's savings (services/lighting/adapters/db.py `savings`): each night
    # reading carries what lighting all night at the circuit's learnt full power would have used
    # (baseline_kwh, written by the service); saved = that minus the energy those readings used.
    "lighting_circuits": """
SELECT r.device_id, coalesce(d.name, r.device_id) AS name,
       coalesce(sum(r.energy_kwh), 0) AS used_kwh,
       coalesce(sum(r.baseline_kwh), 0) AS all_night_kwh,
       coalesce(sum(coalesce(r.energy_kwh, 0)) FILTER (WHERE r.baseline_kwh IS NOT NULL), 0)
           AS night_used_kwh
FROM lighting_readings r LEFT JOIN devices d ON d.id = r.device_id
WHERE r.ts >= %(start)s AND r.ts < %(end)s
GROUP BY r.device_id, d.name ORDER BY r.device_id""",
    "quality_devices": """
SELECT d.domain, count(*) AS devices,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM readings r
           WHERE r.device_id = d.id AND r.ts >= %(start)s AND r.ts < %(end)s)) AS silent
FROM devices d
WHERE d.created_at < %(end)s AND (d.deleted_at IS NULL OR d.deleted_at >= %(end)s)
GROUP BY d.domain ORDER BY d.domain""",
    "quality_deadletters": """
SELECT reason, count(*) AS n FROM deadletters
WHERE received_at >= %(start)s AND received_at < %(end)s
GROUP BY reason ORDER BY n DESC, reason""",
    "quality_links": """
SELECT count(*) AS devices, coalesce(sum(n), 0) AS uplinks,
       count(*) FILTER (WHERE median_rssi < %(weak_rssi_dbm)s) AS weak
FROM (SELECT device_id, count(*) AS n,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY rssi) AS median_rssi
      FROM device_uplinks WHERE ts >= %(start)s AND ts < %(end)s GROUP BY device_id) per_device""",
    "alerts": """
SELECT count(*) AS opened,
       count(*) FILTER (WHERE acknowledged_at IS NOT NULL) AS acknowledged
FROM alerts WHERE opened_at >= %(start)s AND opened_at < %(end)s""",
}


@dataclass(frozen=True, slots=True)
class Thresholds:
    # A bin collected below this fill was visited too early (half empty: a wasted stop).
    useful_fill_pct: float = 50.0
    # The cleaned level saturates at 100 %: a bin at 100 % before its collection overflowed.
    overflow_pct: float = 100.0
    # Median RSSI below this: a LoRaWAN link near the edge of reception (SF12 demodulates to
    # about -137 dBm; -115 leaves little margin for rain or a parked truck).
    weak_rssi_dbm: float = -115.0


def params(period: Period, thresholds: Thresholds) -> dict[str, Any]:
    start, end = period.bounds()
    return {
        "start": start,
        "end": end,
        "start_day": period.start,
        "end_day": period.end,
        "useful_fill_pct": thresholds.useful_fill_pct,
        "overflow_pct": thresholds.overflow_pct,
        "weak_rssi_dbm": thresholds.weak_rssi_dbm,
    }


async def _rows(conn: Conn, name: str, values: Mapping[str, Any]) -> list[DictRow]:
    return await (await conn.execute(QUERIES[name], dict(values))).fetchall()


def _r(x: float | None, digits: int = 1) -> float:
    return round(float(x or 0.0), digits)


async def energy(conn: Conn, values: Mapping[str, Any], *, tariff: float) -> dict[str, Any]:
    per_meter = await _rows(conn, "energy_buildings", values)
    buildings = [
        {
            "device_id": r["device_id"],
            "name": r["name"],
            "consumed_kwh": _r(r["consumed_kwh"]),
            "expected_kwh": _r(r["expected_kwh"]),
        }
        for r in per_meter
    ]
    episodes = {r["device_id"]: r for r in await _rows(conn, "energy_anomalies", values)}
    excess = await _rows(conn, "energy_excess", values)
    total = sum(float(r["excess_kwh"]) for r in excess)
    return {
        "consumed_kwh": _r(sum(float(r["consumed_kwh"]) for r in per_meter)),
        "expected_kwh": _r(sum(float(r["expected_kwh"]) for r in per_meter)),
        "buildings": buildings,
        "anomalies": sum(int(r["episodes"]) for r in episodes.values()),
        "excess_kwh": _r(total),
        "excess_cost_eur": _r(total * tariff, 2),
        # Technicians' feedback on alerts does not exist yet: not a zero, an unknown.
        "confirmed": None,
        "top": [
            {
                "device_id": r["device_id"],
                "name": r["name"],
                "episodes": int(episodes[r["device_id"]]["episodes"])
                if r["device_id"] in episodes
                else 0,
                "excess_kwh": _r(r["excess_kwh"]),
                "excess_cost_eur": _r(float(r["excess_kwh"]) * tariff, 2),
            }
            for r in excess[:TOP]
            if float(r["excess_kwh"]) > 0
        ],
    }


async def lighting(
    conn: Conn, values: Mapping[str, Any], *, tariff: float, co2e_kg_per_kwh: float
) -> dict[str, Any]:
    """kWh the lighting circuits used, and what dimming and switch-off saved against lighting
    every night from dusk to dawn at full power (the lighting service's savings)."""
    rows = await _rows(conn, "lighting_circuits", values)

    def total(key: str) -> float:
        return sum(float(r[key]) for r in rows)

    saved = total("all_night_kwh") - total("night_used_kwh")
    return {
        "circuits": len(rows),
        "used_kwh": _r(total("used_kwh")),
        "all_night_kwh": _r(total("all_night_kwh")),
        "night_used_kwh": _r(total("night_used_kwh")),
        "saved_kwh": _r(saved),
        "saved_eur": _r(saved * tariff, 2),
        "saved_co2e_kg": _r(saved * co2e_kg_per_kwh),
        "cabinets": [
            {
                "device_id": r["device_id"],
                "name": r["name"],
                "used_kwh": _r(r["used_kwh"]),
                "saved_kwh": _r(float(r["all_night_kwh"]) - float(r["night_used_kwh"])),
            }
            for r in rows
        ],
    }


def fixed_comparison(plans: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The recorded plans against the town's fixed schedule over the same weeks.

    Each recorded round day stands for 1/r of a week of rounds (r: round days a week), so the
    plans cover `weeks` = the sum of 1/r. Over them the fixed schedule empties every bin v
    times a week (the setting recorded with each plan): its km are those of a tour of every bin
    (from the same depot, on the same day) x v x weeks, that is the sum over the days of
    every_bin_km x v / r; mean tour x v x weeks when the settings did not change. A week
    without its plans counts on neither side.

    >>> day = {"km": 20.0, "every_bin_km": 60.0, "bins": 30, "every_bins": 150,
    ...        "fixed_visits_per_week": 1.5, "rounds_per_week": 3}
    >>> c = fixed_comparison([day] * 6)
    >>> [round(c[k], 6) for k in ("weeks", "planned_km", "fixed_km", "saved_km", "fixed_visits")]
    [2.0, 120.0, 180.0, 60.0, 450.0]
    """
    share = [float(p["fixed_visits_per_week"]) / int(p["rounds_per_week"]) for p in plans]
    weeks = sum(1.0 / int(p["rounds_per_week"]) for p in plans)
    planned = sum(float(p["km"]) for p in plans)
    fixed = sum(float(p["every_bin_km"]) * s for p, s in zip(plans, share, strict=True))
    return {
        "weeks": weeks,
        "planned_km": planned,
        "every_bin_tour_km": sum(float(p["every_bin_km"]) for p in plans) / len(plans)
        if plans
        else 0.0,
        "fixed_visits_per_week": sum(share) / weeks if weeks else 0.0,
        "fixed_km": fixed,
        "saved_km": fixed - planned,
        "planned_visits": float(sum(int(p["bins"]) for p in plans)),
        "fixed_visits": sum(int(p["every_bins"]) * s for p, s in zip(plans, share, strict=True)),
    }


async def waste(
    conn: Conn, values: Mapping[str, Any], *, fuel_l_per_km: float, co2e_kg_per_km: float
) -> dict[str, Any]:
    plans = await _rows(conn, "waste_plans", values)
    collections = (await _rows(conn, "waste_collections", values))[0]
    c = fixed_comparison(plans)
    saved = c["saved_km"]
    return {
        "plan_days": len(plans),
        "weeks": _r(c["weeks"], 2),
        "planned_km": _r(c["planned_km"]),
        "every_bin_tour_km": _r(c["every_bin_tour_km"]),
        "fixed_visits_per_week": _r(c["fixed_visits_per_week"], 2),
        "fixed_km": _r(c["fixed_km"]),
        "planned_visits": int(c["planned_visits"]),
        "fixed_visits": round(c["fixed_visits"]),
        "saved_km": _r(saved),
        "saved_fuel_l": _r(saved * fuel_l_per_km),
        "saved_co2e_kg": _r(saved * co2e_kg_per_km),
        "collections": int(collections["collections"]),
        "overflows": int(collections["overflows"]),
        "low_fill": int(collections["low_fill"]),
        "useful_fill_pct": values["useful_fill_pct"],
    }


async def traffic(
    conn: Conn, values: Mapping[str, Any], previous: Mapping[str, Any]
) -> dict[str, Any]:
    now = {r["device_id"]: r for r in await _rows(conn, "traffic_counters", values)}
    before = {r["device_id"]: r for r in await _rows(conn, "traffic_counters", previous)}

    # Totals from the rows, not from the rounded per-counter figures.
    def total(rows: Mapping[str, DictRow], key: str) -> float:
        return sum(float(r[key]) for r in rows.values())

    counters = [
        {
            "device_id": d,
            "name": (now.get(d) or before[d])["name"],
            "incidents": int(now[d]["incidents"]) if d in now else 0,
            "congestion_h": _r(now[d]["congestion_h"]) if d in now else 0.0,
            "incidents_previous": int(before[d]["incidents"]) if d in before else 0,
            "congestion_h_previous": _r(before[d]["congestion_h"]) if d in before else 0.0,
        }
        for d in sorted(now.keys() | before.keys())
    ]
    return {
        "incidents": sum(c["incidents"] for c in counters),
        "incidents_previous": sum(c["incidents_previous"] for c in counters),
        "congestion_h": _r(total(now, "congestion_h")),
        "congestion_h_previous": _r(total(before, "congestion_h")),
        "counters": counters,
    }


async def quality(conn: Conn, values: Mapping[str, Any]) -> dict[str, Any]:
    domains = await _rows(conn, "quality_devices", values)
    letters = await _rows(conn, "quality_deadletters", values)
    links = (await _rows(conn, "quality_links", values))[0]
    alerts = (await _rows(conn, "alerts", values))[0]
    return {
        "devices": sum(int(r["devices"]) for r in domains),
        "silent": sum(int(r["silent"]) for r in domains),
        "by_domain": {
            r["domain"]: {"devices": int(r["devices"]), "silent": int(r["silent"])} for r in domains
        },
        "deadletters": sum(int(r["n"]) for r in letters),
        "deadletters_by_reason": {r["reason"]: int(r["n"]) for r in letters},
        "link_devices": int(links["devices"]),
        "uplinks": int(links["uplinks"]),
        "weak_links": int(links["weak"]),
        "weak_rssi_dbm": values["weak_rssi_dbm"],
        "alerts_opened": int(alerts["opened"]),
        "alerts_acknowledged": int(alerts["acknowledged"]),
    }


def balance(*, waste: Mapping[str, Any], footprint: Mapping[str, Any] | None) -> dict[str, Any]:
    """CO2e avoided by the rounds against the platform's own; None where a side is unknown.

    >>> balance(waste={"saved_co2e_kg": 10.0}, footprint={"kg_co2e_total": 4.0})["net_kg"]
    6.0
    >>> balance(waste={"saved_co2e_kg": 10.0}, footprint=None)["net_kg"] is None
    True
    """
    avoided = float(waste["saved_co2e_kg"])
    own = None if footprint is None else float(footprint["kg_co2e_total"])
    return {
        "avoided_kg": _r(avoided),
        # Grams matter here: a quiet week of a small stack is a fraction of a kilogram.
        "platform_kg": None if own is None else _r(own, 3),
        "net_kg": None if own is None else _r(avoided - own, 3),
    }


def stamp(period: Period, generated_at: datetime) -> dict[str, Any]:
    return {
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "timezone": period.timezone,
        "days": period.days,
        "generated_at": generated_at.isoformat(),
    }
