"""The traffic service on the real stack: a SIGKILL changes nothing in what it derives. The
oracle is the same processor run here, uninterrupted, on the same readings."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.traffic.domain.counter import FlowRow, TrafficProcessor
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

TOPIC = READINGS_TOPICS[Domain.TRAFFIC]


ANOMALIES = {"traffic.incident", "traffic.congestion"}
# Sixteen days of 15-minute counts: a profile alerts only where it has seen the day type and
# hour on three earlier days (shared/ml/warmup.py); four days, as before, were a cold model.
N = 16 * 96


def _series(device_id: str, *, start: datetime, n: int, phase: float) -> list[ReadingBatch]:
    out = []
    for i in range(n):
        ts = start + timedelta(minutes=15 * i)
        day = (ts.hour + ts.minute / 60) / 24
        vehicles = round(60 + 50 * math.sin(2 * math.pi * (day + phase)) + (i % 5))
        if n - 40 <= i < n - 32:
            vehicles = 3  # a closed lane, to flag
        readings = [Reading(ts=ts, metric="vehicles", value=vehicles)]
        if vehicles:
            speed = 8.0 if vehicles == 3 else 50 - vehicles / 10  # the lane closure crawls
            readings.append(Reading(ts=ts, metric="speed_kmh", value=speed))
        out.append(
            ReadingBatch(
                device_id=device_id,
                domain=Domain.TRAFFIC,
                received_at=datetime.now(UTC),
                readings=readings,
            )
        )
    return out


SQL = (
    "SELECT device_id, ts, vehicles, expected, score, kind FROM traffic_flows "
    "WHERE device_id = ANY(%s)"
)


def _oracle(series: Series) -> dict[Key, tuple[Any, ...]]:
    return oracle(
        TrafficProcessor(),
        series,
        row_type=FlowRow,
        values=lambda r: (r.vehicles, r.expected, r.score, r.kind),
    )


def test_sigkill_and_restart_give_exactly_the_uninterrupted_outputs(
    stack: Stack, stack_env: dict[str, str], api: httpx.Client
) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=18)
    names = [f"tc-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    series = {d: _series(d, start=start, n=N, phase=k / 5) for k, d in enumerate(names)}
    ids = list(series)
    db, kafka = stack_env["DATABASE_URL"], stack_env["KAFKA_BOOTSTRAP"]

    produce(kafka, TOPIC, interleave(series, 0, N // 2))
    wait_for(lambda: len(stored(db, SQL, ids)) >= 300, timeout=120, what="half of the first part")
    stack.kill("traffic")  # mid-stream, possibly mid-batch
    produce(kafka, TOPIC, interleave(series, N // 2, N))
    stack.restart_service("traffic")

    expected = _oracle(series)
    assert_stored_once(db, SQL, ids, expected, timeout=180, what="every count scored once")
    assert any(kind in ANOMALIES for *_, kind in expected.values())

    # And the API serves what the service derived.
    r = api.get(f"/v1/traffic/counters/{ids[0]}/forecast")
    assert r.status_code == 200
    assert [s["target_ts"] for s in r.json()["steps"]] == sorted(
        s["target_ts"] for s in r.json()["steps"]
    )
    assert len(r.json()["steps"]) == 4
    # A count stamps the end of its interval: (start - 15 min, end] holds the N of them.
    first, end = start - timedelta(minutes=15), start + timedelta(minutes=15 * (N - 1))
    r = api.get(
        f"/v1/traffic/counters/{ids[0]}/flow",
        params={"start": first.isoformat(), "end": end.isoformat(), "bucket": "1h"},
    )
    assert r.status_code == 200
    assert sum(b["readings"] for b in r.json()["items"]) == N
    r = api.get(
        "/v1/traffic/incidents", params={"start": start.isoformat(), "end": end.isoformat()}
    )
    assert r.status_code == 200
    assert any(i["device_id"] in ids and i["kind"] in ANOMALIES for i in r.json()["items"])


def test_traffic_routes_are_served_under_the_operator_api(api: httpx.Client) -> None:
    assert api.get("/v1/traffic/incidents").status_code == 200
    assert api.get("/v1/traffic/counters/nope/forecast").status_code == 404
    r = api.get("/v1/traffic/counters/nope/flow", params={"bucket": "7m"})
    assert r.status_code == 422
    assert httpx.get(api.base_url.join("/v1/traffic/incidents")).status_code == 401
