"""The energy service on the real stack: a SIGKILL or a rebalance changes nothing in what it
derives. The oracle is the same processor run here, uninterrupted, on the same readings."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.energy.domain.meter import EnergyProcessor, ScoreRow
from shared.schemas import Reading, ReadingBatch
from shared.topics import READINGS_TOPICS, Domain
from tests.runtime_support import (
    Key,
    Series,
    assert_stored_once,
    interleave,
    oracle,
    produce,
    stored,
)
from tests.support import wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.e2e

TOPIC = READINGS_TOPICS[Domain.ENERGY]


def _series(device_id: str, *, start: datetime, n: int, phase: float) -> list[ReadingBatch]:
    out = []
    for i in range(n):
        ts = start + timedelta(minutes=15 * i)
        hour = (ts.hour + ts.minute / 60) / 24
        value = round(5 + 4 * math.sin(2 * math.pi * (hour + phase)) + (i % 7) * 0.1, 3)
        if i == n - 20:
            value += 40  # something to flag
        out.append(
            ReadingBatch(
                device_id=device_id,
                domain=Domain.ENERGY,
                received_at=datetime.now(UTC),
                readings=[Reading(ts=ts, metric="energy_kwh", value=value)],
            )
        )
    return out


SQL = (
    "SELECT device_id, ts, observed, expected, lower, upper, score, is_anomaly, kind "
    "FROM energy_scores WHERE device_id = ANY(%s)"
)


def _oracle(series: Series) -> dict[Key, tuple[Any, ...]]:
    return oracle(
        EnergyProcessor(),
        series,
        row_type=ScoreRow,
        values=lambda r: (r.observed, r.expected, r.lower, r.upper, r.score, r.is_anomaly, r.kind),
    )


def test_sigkill_and_restart_give_exactly_the_uninterrupted_outputs(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=6)
    names = [f"em-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    series = {d: _series(d, start=start, n=400, phase=k / 5) for k, d in enumerate(names)}
    ids = list(series)
    db, kafka = stack_env["DATABASE_URL"], stack_env["KAFKA_BOOTSTRAP"]

    produce(kafka, TOPIC, interleave(series, 0, 200))
    wait_for(lambda: len(stored(db, SQL, ids)) >= 300, timeout=120, what="half of the first part")
    stack.kill("energy")  # mid-stream, possibly mid-batch
    produce(kafka, TOPIC, interleave(series, 200, 400))
    stack.restart_service("energy")

    expected = _oracle(series)
    assert_stored_once(db, SQL, ids, expected, timeout=180, what="every reading scored once")


def test_rebalance_hands_devices_over_with_their_state(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=5)
    # Enough devices to land on every partition.
    names = [f"rb-{uuid.uuid4().hex[:8]}" for _ in range(24)]
    series = {d: _series(d, start=start, n=300, phase=k / 24) for k, d in enumerate(names)}
    ids = list(series)
    db, kafka = stack_env["DATABASE_URL"], stack_env["KAFKA_BOOTSTRAP"]
    stack.restart_service("energy-2")  # a second worker joins the group
    try:
        produce(kafka, TOPIC, interleave(series, 0, 150))
        wait_for(lambda: len(stored(db, SQL, ids)) >= 1000, timeout=120, what="both workers busy")
        stack.kill("energy")  # the other one takes its partitions over
        produce(kafka, TOPIC, interleave(series, 150, 300))
        expected = _oracle(series)
        assert_stored_once(
            db,
            SQL,
            ids,
            expected,
            timeout=240,
            what="every reading scored once by one of the workers",
        )
    finally:
        stack.restart_service("energy")
        stack.stop_service("energy-2")


def test_energy_routes_are_served_under_the_operator_api(api: httpx.Client) -> None:
    r = api.get("/v1/energy/summary", params={"day": "2026-01-05"})
    assert r.status_code == 200
    assert set(r.json()) >= {"day", "total_kwh", "wasted_kwh", "top_anomalies"}
    assert httpx.get(api.base_url.join("/v1/energy/summary")).status_code == 401


def test_a_meter_erased_and_registered_again_starts_with_a_fresh_model(
    api: httpx.Client, stack_env: dict[str, str], device_factory
) -> None:
    device = device_factory("energy")
    db, kafka = stack_env["DATABASE_URL"], stack_env["KAFKA_BOOTSTRAP"]
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    history = _series(device.id, start=start, n=120, phase=0.3)
    produce(kafka, TOPIC, history)
    wait_for(lambda: len(stored(db, SQL, [device.id])) == 120, timeout=120, what="history scored")
    # The consumption the console charts, with the expected band around the expected line.
    r = api.get(
        f"/v1/energy/meters/{device.id}/consumption",
        params={"bucket": "1h", "start": start.isoformat()},
    )
    assert r.status_code == 200, r.text
    hours = r.json()["items"]
    assert len(hours) == 30
    assert all(h["lower_kwh"] <= h["expected_kwh"] <= h["upper_kwh"] for h in hours)

    r = api.delete(f"/v1/devices/{device.id}", params={"erase": "true"})
    assert r.status_code == 200, r.text
    r = api.post("/v1/devices", json={"id": device.id, "domain": "energy"})
    assert r.status_code == 201, r.text
    again = _series(device.id, start=start + timedelta(days=2), n=1, phase=0.3)
    produce(kafka, TOPIC, again)
    got = wait_for(lambda: stored(db, SQL, [device.id]), timeout=120, what="the new reading")
    # What a model that never saw the erased history says about this reading.
    fresh = _oracle({device.id: again})
    assert got == fresh
