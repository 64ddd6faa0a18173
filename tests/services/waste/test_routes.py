"""The collection plan through the real waste service: each truck's route fits the shift asked,
the plan says how many of the trucks asked it uses and why, and bad shifts are refused."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.waste.domain.plan import Point, distance_matrix, route_length
from shared.ml.calendar import PARIS
from tests.support import wait_for
from tests.waste_support import add_full_bins

pytestmark = pytest.mark.integration

DEPOT = Point("depot", 45.8990, 6.1290)


@pytest.fixture
def full_bins(api: httpx.Client, stack_env: dict[str, str]) -> Any:
    """Eight bins around the depot, each at 85 % and rising: due in the next round."""
    bins = add_full_bins(
        api,
        stack_env["KAFKA_BOOTSTRAP"],
        prefix=f"sh-{uuid.uuid4().hex[:6]}-",
        around=(DEPOT.lat, DEPOT.lon),
    )
    try:
        yield bins
    finally:
        for device_id in bins:
            api.delete(f"/v1/devices/{device_id}")


def _plan(api: httpx.Client, bins: dict[str, Any], **params: Any) -> dict[str, Any]:
    def ask() -> dict[str, Any] | None:
        r = api.get("/v1/waste/plan", params={"depot": f"{DEPOT.lat},{DEPOT.lon}", **params})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        planned = {b["id"] for b in body["bins"]} | {b["id"] for b in body["unserved"]}
        return body if set(bins) <= planned else None

    result: dict[str, Any] = wait_for(ask, timeout=60, what="the bins to be due")
    return result


def _route_hours(body: dict[str, Any], route: dict[str, Any]) -> float:
    # Independently of the service: the route's road metres (same haversine and detour) at the
    # truck's speed, plus the time to empty each bin.
    stops = [Point(s["id"], s["lat"], s["lon"]) for s in route["stops"]]
    matrix = distance_matrix([DEPOT, *stops], detour=body["solver"]["road_detour"])
    metres = route_length(matrix, list(range(1, len(stops) + 1)))
    trucks = body["trucks"]
    return float(metres / 1000 / trucks["speed_kmh"] + len(stops) * trucks["stop_min"] / 60)


def test_a_long_shift_takes_every_bin_in_one_truck_and_says_so(
    api: httpx.Client, full_bins: dict[str, Any]
) -> None:
    body = _plan(api, full_bins, vehicles=3, shift_h=8)
    trucks = body["trucks"]
    used = [r for r in body["routes"] if r["stops"]]
    assert trucks["asked"] == 3 and trucks["used"] == len(used) and trucks["shift_h"] == 8
    assert not body["unserved"]
    for route in used:
        hours = _route_hours(body, route)
        assert hours <= 8 + 1e-6
        assert route["hours"] == pytest.approx(hours, abs=0.01)
    assert trucks["longest_h"] == pytest.approx(max(r["hours"] for r in used), abs=0.01)
    assert trucks["bins"] == len(body["bins"]) == sum(len(r["stops"]) for r in used)
    if len(used) < 3:
        assert trucks["reason"] == "fit"
        assert trucks["text"].startswith(f"{len(used)} of 3 trucks: the {trucks['bins']} bins")
    else:
        assert trucks["reason"] is None


def test_a_shift_too_short_for_any_bin_serves_none_and_says_why(
    api: httpx.Client, full_bins: dict[str, Any]
) -> None:
    # 36 seconds: not even the time to empty one bin (a minute by default).
    body = _plan(api, full_bins, vehicles=2, shift_h=0.01)
    assert not body["bins"] and set(full_bins) <= {b["id"] for b in body["unserved"]}
    assert body["trucks"]["used"] == 0 and body["trucks"]["reason"] == "too_short"


@pytest.mark.parametrize("shift_h", ["0", "-1", "25", "seven", "nan"])
def test_a_bad_shift_is_refused(api: httpx.Client, shift_h: str) -> None:
    r = api.get("/v1/waste/plan", params={"depot": "45.9,6.12", "shift_h": shift_h})
    assert r.status_code == 422, r.text


def test_fridays_round_takes_the_bins_full_before_mondays(api: httpx.Client) -> None:
    # The default round days are Monday, Wednesday and Friday (docs/waste.md).
    friday = date(2026, 3, 6)
    r = api.get("/v1/waste/plan", params={"depot": "45.9,6.12", "date": friday.isoformat()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["date"] == friday.isoformat()
    next_round = datetime.fromisoformat(body["next_round_at"]).astimezone(PARIS)
    assert next_round.date() == friday + timedelta(days=3)
    assert next_round.hour == datetime.fromisoformat(body["round_at"]).astimezone(PARIS).hour
