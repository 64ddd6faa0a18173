"""The waste service on the real stack: a SIGKILL changes nothing in what it derives, and the
collection plan is served under the operator API. The oracle is the same processor run here,
uninterrupted, on the same readings."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.waste.domain.bin import LevelRow, WasteProcessor
from services.waste.domain.plan import Point, distance_matrix, nearest_neighbour, route_length
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

TOPIC = READINGS_TOPICS[Domain.WASTE]


def _series(device_id: str, *, start: datetime, n: int, speed: float) -> list[ReadingBatch]:
    """A bin filling `speed` points an hour (faster by day), emptied when it passes 90%."""
    out, level = [], 5.0
    for i in range(n):
        ts = start + timedelta(minutes=15 * i)
        level += speed / 4 * (1.5 if 8 <= ts.hour < 20 else 0.5)
        if level > 90:
            level = 3.0
        raw = round(level + 1.5 * math.sin(i * 1.7), 1)
        if i % 97 == 50:
            raw = 0.0  # a glitch
        temp = 12.0 + (35.0 if i == n - 30 else 0.0)  # and a fire near the end
        out.append(
            ReadingBatch(
                device_id=device_id,
                domain=Domain.WASTE,
                received_at=datetime.now(UTC),
                readings=[
                    Reading(ts=ts, metric="fill_pct", value=raw),
                    Reading(ts=ts, metric="temperature_c", value=temp),
                ],
            )
        )
    return out


SQL = "SELECT device_id, ts, raw, level, flag FROM waste_levels WHERE device_id = ANY(%s)"


def _oracle(series: Series) -> dict[Key, tuple[Any, ...]]:
    return oracle(
        WasteProcessor(), series, row_type=LevelRow, values=lambda r: (r.raw, r.level, r.flag)
    )


def test_sigkill_and_restart_give_exactly_the_uninterrupted_outputs(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=6)
    names = [f"wb-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    series = {d: _series(d, start=start, n=400, speed=1.0 + k) for k, d in enumerate(names)}
    ids = list(series)
    db, kafka = stack_env["DATABASE_URL"], stack_env["KAFKA_BOOTSTRAP"]

    produce(kafka, TOPIC, interleave(series, 0, 200))
    wait_for(lambda: len(stored(db, SQL, ids)) >= 300, timeout=120, what="half of the first part")
    stack.kill("waste")  # mid-stream, possibly mid-batch
    produce(kafka, TOPIC, interleave(series, 200, 400))
    stack.restart_service("waste")

    expected = _oracle(series)
    assert_stored_once(db, SQL, ids, expected, timeout=180, what="every reading cleaned once")
    assert any(flag == "glitch" for _, _, flag in expected.values())


def test_the_plan_visits_every_due_bin_once_in_no_longer_a_tour_than_nearest_neighbour(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    depot = Point("depot", 45.8990, 6.1290)
    tag = uuid.uuid4().hex[:6]
    bins = {
        f"pb-{tag}-{i:02d}": (
            45.8990 + 0.006 * math.cos(i * 2.4) * (1 + i % 3),
            6.1290 + 0.008 * math.sin(i * 2.4),
        )
        for i in range(9)
    }
    for device_id, (lat, lon) in bins.items():
        r = api.post(
            "/v1/devices",
            json={"id": device_id, "domain": "waste", "location": {"lat": lat, "lon": lon}},
        )
        assert r.status_code == 201, r.text
    try:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        batches = [
            ReadingBatch(
                device_id=d,
                domain=Domain.WASTE,
                received_at=now,
                readings=[
                    Reading(
                        ts=now - timedelta(minutes=15 * (4 - k)), metric="fill_pct", value=85.0 + k
                    )
                ],
            )
            for k in range(4)
            for d in bins
        ]
        produce(stack_env["KAFKA_BOOTSTRAP"], TOPIC, batches)

        def plan() -> dict | None:
            r = api.get(
                "/v1/waste/plan",
                params={"depot": f"{depot.lat},{depot.lon}", "vehicles": 2, "capacity": 400},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            return body if set(bins) <= {b["id"] for b in body["bins"]} else None

        body = wait_for(plan, timeout=60, what="the bins to be due")
        visited = [s["id"] for route in body["routes"] for s in route["stops"]]
        assert sorted(visited) == sorted(b["id"] for b in body["bins"])  # each once
        # Every route starts and ends at the depot: its length counts both legs.
        points = [depot, *(Point(b["id"], b["lat"], b["lon"]) for b in body["bins"])]
        index = {p.id: i for i, p in enumerate(points)}
        matrix = distance_matrix(points, detour=body["solver"]["road_detour"])
        for route in body["routes"]:
            length = route_length(matrix, [index[s["id"]] for s in route["stops"]])
            assert abs(length / 1000 - route["km"]) < 0.01
        nn = nearest_neighbour(matrix, vehicles=2, capacity=400)
        nn_km = sum(route_length(matrix, r) for r in nn) / 1000
        assert body["km"] <= nn_km + 1e-6
        # Never longer than the round of every bin skipping the others (distances are whole
        # metres: a skipped stop may add up to 1.5 m of rounding).
        skipped = body["every_bin"]["bins"] - len(body["bins"])
        assert body["every_bin"]["km"] >= body["km"] - 0.0015 * skipped
        assert body["saved_km"] >= -0.0015 * skipped
        assert body["co2_kg"] >= 0 and body["solver"]["seconds"] >= 0
    finally:
        for device_id in bins:
            api.delete(f"/v1/devices/{device_id}")


def test_waste_routes_are_served_under_the_operator_api(api: httpx.Client) -> None:
    r = api.get("/v1/waste/bins", params={"min_fill": 50})
    assert r.status_code == 200
    assert all(b["level_pct"] >= 50 for b in r.json()["items"])
    assert api.get("/v1/waste/bins/no-such-bin").status_code == 404
    # A malformed depot is refused (the default depot, if any, is the simulated town's).
    assert api.get("/v1/waste/plan", params={"depot": "north"}).status_code == 422
    assert httpx.get(api.base_url.join("/v1/waste/bins")).status_code == 401
