"""`townpulse evaluate --labels` and the running stack give the same alerts on the same stream:
one code path (the energy processor, the alerts lifecycle), asserted on a replayed series."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from services.energy.settings import EnergySettings
from shared.ml.calendar import TownCalendar
from shared.schemas import Reading, ReadingBatch
from shared.topics import READINGS_TOPICS, Domain
from tests.runtime_support import produce
from tests.support import wait_for
from townpulse import evaluation

pytestmark = pytest.mark.e2e

HOUR = timedelta(hours=1)


def _value(i: int, ts: datetime) -> float:
    """A building's day (low at night, a peak in the afternoon) with faults after two weeks."""
    day = 4 + 6 * max(0.0, math.sin(math.pi * (ts.hour - 6) / 14)) if 6 <= ts.hour <= 20 else 4
    base = round(day + (i % 5) * 0.05, 3)
    if 340 <= i < 346:
        return round(base * 4, 3)  # something left running
    if 380 <= i < 392:
        return 0.0  # a tripped supply
    if 430 <= i < 436:
        return round(base + 30, 3)  # a fault
    return base


def _alerts(api: httpx.Client, device_id: str, start: datetime) -> list[dict[str, Any]]:
    r = api.get(
        "/v1/alerts",
        params={
            "device_id": device_id,
            "start": start.isoformat(),
            "end": (datetime.now(UTC) + HOUR).isoformat(),
            "limit": 5000,
        },
    )
    r.raise_for_status()
    alerts: list[dict[str, Any]] = r.json()
    return alerts


def _count(db: str, sql: str, device_id: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute(sql, (device_id,)).fetchone()
    return int(row[0]) if row else 0


def test_evaluate_and_the_service_open_the_same_alerts(
    api: httpx.Client, stack_env: dict[str, str], tmp_path: Path
) -> None:
    device = f"eval-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 22 * 24 * HOUR
    n = 500
    series = [(start + i * HOUR, _value(i, start + i * HOUR)) for i in range(n)]

    # The stack: each reading a message, keyed by device, as the gateway publishes them.
    batches = [
        ReadingBatch(
            device_id=device,
            domain=Domain.ENERGY,
            received_at=datetime.now(UTC),
            readings=[Reading(ts=ts, metric="energy_kwh", value=v)],
        )
        for ts, v in series
    ]
    produce(stack_env["KAFKA_BOOTSTRAP"], READINGS_TOPICS[Domain.ENERGY], batches)

    # evaluate's path: the same readings as a CSV, read back the way `townpulse evaluate` reads
    # it, in the town calendar the stack's energy service runs in.
    csv = tmp_path / "meter.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{ts.isoformat()},{v}\n" for ts, v in series))
    settings = EnergySettings()
    calendar = TownCalendar(settings.timezone, settings.holidays_country)
    readings = evaluation.read_readings(csv)
    replayed = evaluation.alert_openings(readings, domain="energy", calendar=calendar)
    assert len(replayed) >= 2, "the series should alert: a test that cannot fail proves nothing"

    db = stack_env["DATABASE_URL"]
    wait_for(
        lambda: _count(db, "SELECT count(*) FROM energy_scores WHERE device_id = %s", device) == n,
        timeout=180,
        what="every reading scored by the energy service",
    )
    # The service's own record of its episodes: each one is an alert once the alerts service
    # has consumed its events (hourly episodes are further apart than the cool-down).
    episodes = _count(
        db, "SELECT count(DISTINCT started_at) FROM energy_episodes WHERE device_id = %s", device
    )
    wait_for(
        lambda: len(_alerts(api, device, start)) >= episodes,
        timeout=120,
        what="the episodes' alerts",
    )
    served = sorted(
        (a["kind"], datetime.fromisoformat(a["opened_at"]))
        for a in _alerts(api, device, start)
        if a["opened_at"] is not None
    )
    assert served == sorted((o.kind, o.opened_at) for o in replayed)
    assert len(served) == episodes
