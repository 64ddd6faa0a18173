"""The planner: every bin once per plan, routes from and back to the depot, never longer than
the nearest-neighbour tour of the same bins, and the solver stops at its time limit."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.waste.domain.plan import (
    DEFAULT_DETOUR,
    BinStatus,
    Point,
    RoutePlan,
    Shift,
    best_round,
    distance_matrix,
    due_bins,
    fitting,
    nearest_neighbour,
    plan_routes,
    route_length,
    skipping,
    trucks_note,
)
from townpulse.simulator.town import Domain, build_town

pytestmark = pytest.mark.unit


def _town_bins(n: int, seed: int) -> tuple[Point, list[Point]]:
    town = build_town(energy=0, waste=n, traffic=0, seed=seed)
    depot = Point("depot", town.centre[0] - 0.01, town.centre[1] + 0.01)
    return depot, [Point(d.id, d.lat, d.lon) for d in town.of(Domain.WASTE)]


@pytest.mark.parametrize(
    ("n", "vehicles", "capacity"), [(2, 1, None), (25, 1, None), (60, 3, 25), (40, 2, 20)]
)
def test_routes_are_valid_and_no_longer_than_nearest_neighbour(
    n: int, vehicles: int, capacity: int | None
) -> None:
    depot, bins = _town_bins(n, seed=n)
    plan = plan_routes(depot, bins, vehicles=vehicles, capacity=capacity, time_limit_s=0.5)
    visited = [b for r in plan.routes for b in r]
    assert sorted(visited) == sorted(b.id for b in bins)  # every bin, once
    assert len(plan.routes) == vehicles
    assert all(len(r) <= (capacity or n) for r in plan.routes)
    points = [depot, *bins]
    index = {p.id: i for i, p in enumerate(points)}
    matrix = distance_matrix(points)
    # route_length closes each route at the depot (node 0) on both ends.
    lengths = [route_length(matrix, [index[b] for b in r]) if r else 0 for r in plan.routes]
    assert lengths == plan.route_m
    nn = nearest_neighbour(matrix, vehicles=vehicles, capacity=capacity or n)
    assert plan.distance_m <= sum(route_length(matrix, r) for r in nn)


def test_the_solver_improves_on_nearest_neighbour() -> None:
    # Guided local search runs until its time limit (what bounds the answer's time); here a
    # second is enough to beat the greedy tour of 80 bins.
    depot, bins = _town_bins(80, seed=5)
    plan = plan_routes(depot, bins, vehicles=1, time_limit_s=1.0)
    assert plan.distance_m < plan.nearest_neighbour_m
    assert "OR-Tools" in plan.solver


def test_an_impossible_capacity_is_refused() -> None:
    depot, bins = _town_bins(10, seed=1)
    with pytest.raises(ValueError, match="more bins"):
        plan_routes(depot, bins, vehicles=2, capacity=4)


def test_due_bins_are_those_full_before_the_next_round() -> None:
    rng = random.Random(3)
    now = datetime(2026, 3, 3, 5, tzinfo=UTC)
    bins = [
        BinStatus(
            f"b{i}",
            45.9,
            6.1,
            rng.uniform(0, 100),
            now + timedelta(hours=rng.uniform(-10, 60)) if i % 4 else None,
        )
        for i in range(40)
    ]
    due = due_bins(bins, next_round_at=now + timedelta(days=1))
    assert {b.id for b in due} == {
        b.id for b in bins if b.full_at is not None and b.full_at < now + timedelta(days=1)
    }
    assert [b.full_at for b in due] == sorted(b.full_at for b in due if b.full_at is not None)


def _poor_round(depot: Point, bins: list[Point]) -> RoutePlan:
    """A valid round of `bins` in a deliberately bad order (every other bin, then the rest)."""
    order = [*range(1, len(bins) + 1, 2), *range(2, len(bins) + 1, 2)]
    m = distance_matrix([depot, *bins])
    length = float(route_length(m, order))
    return RoutePlan([[bins[i - 1].id for i in order]], [length], length, length, "poor", 0.1)


def test_the_round_of_every_bin_skipping_the_others_replaces_a_longer_plan() -> None:
    depot, every = _town_bins(40, seed=5)
    due = every[::3]
    full = plan_routes(depot, every, time_limit_s=0.5)
    poor = _poor_round(depot, due)
    best = best_round(poor, full, depot, due, capacity=None, detour=DEFAULT_DETOUR)
    assert sorted(b for r in best.routes for b in r) == sorted(b.id for b in due)
    assert best.distance_m < poor.distance_m
    # Never longer than every bin's round (whole metres: up to 1.5 m per skipped stop).
    assert best.distance_m <= full.distance_m + 1.5 * (len(every) - len(due))
    m = distance_matrix([depot, *due])
    index = {b.id: i for i, b in enumerate(due, start=1)}
    assert best.distance_m == sum(route_length(m, [index[b] for b in r]) for r in best.routes)
    assert best.nearest_neighbour_m == poor.nearest_neighbour_m  # the due bins' own baseline


def test_a_plan_already_shorter_is_kept_and_capacity_still_holds() -> None:
    depot, every = _town_bins(30, seed=8)
    due = every[:12]
    plan = plan_routes(depot, due, vehicles=2, capacity=6, time_limit_s=0.5)
    full = plan_routes(depot, every, vehicles=2, capacity=None, time_limit_s=0.5)
    best = best_round(plan, full, depot, due, capacity=6, detour=DEFAULT_DETOUR)
    assert best.distance_m <= plan.distance_m
    assert all(len(r) <= 6 for r in best.routes)
    # A round that would overload a truck is no candidate at all.
    one_truck = RoutePlan([[b.id for b in every]], [0.0], 0.0, 0.0, "one truck", 0.0)
    assert skipping(one_truck, depot, due, capacity=6, detour=DEFAULT_DETOUR) is None
    assert best_round(plan, one_truck, depot, due, capacity=6, detour=DEFAULT_DETOUR) is plan


SHIFT = Shift(hours=7.0, speed_kmh=20.0, stop_min=1.0)


def _hours(matrix: list[list[int]], route: list[int], shift: Shift) -> float:
    # Independently of Shift.route_s: metres at the speed, plus a stop per bin.
    return route_length(matrix, route) / 1000 / shift.speed_kmh + len(route) * shift.stop_min / 60


@pytest.mark.parametrize(("n", "hours"), [(30, 1.0), (60, 1.5), (25, 7.0)])
def test_every_route_fits_in_the_shift(n: int, hours: float) -> None:
    depot, bins = _town_bins(n, seed=n)
    shift = Shift(hours=hours, speed_kmh=20.0, stop_min=1.0)
    room = fitting(depot, bins, vehicles=3, capacity=None, shift=shift)
    served = bins[:room]
    plan = plan_routes(depot, served, vehicles=3, shift=shift, time_limit_s=0.3)
    assert sorted(b for r in plan.routes for b in r) == sorted(b.id for b in served)
    points = [depot, *served]
    index = {p.id: i for i, p in enumerate(points)}
    matrix = distance_matrix(points)
    for route in plan.routes:
        assert _hours(matrix, [index[b] for b in route], shift) <= hours + 1e-6
    if room < n:  # what was left out would not fit: one more bin and the trucks cannot
        with pytest.raises(ValueError, match="more bins"):
            plan_routes(depot, bins[: room + 1], vehicles=3, shift=shift, time_limit_s=0.1)


def test_a_short_shift_needs_more_trucks_than_a_long_one() -> None:
    depot, bins = _town_bins(40, seed=3)
    long_plan = plan_routes(depot, bins, vehicles=2, shift=SHIFT, time_limit_s=0.3)
    short = Shift(hours=1.5, speed_kmh=20.0, stop_min=1.0)
    assert fitting(depot, bins, vehicles=2, capacity=None, shift=short) == len(bins)
    short_plan = plan_routes(depot, bins, vehicles=2, shift=short, time_limit_s=0.3)
    points = [depot, *bins]
    matrix = distance_matrix(points)
    index = {p.id: i for i, p in enumerate(points)}
    one_tour_h = _hours(matrix, [index[b] for r in long_plan.routes for b in r], SHIFT)
    assert one_tour_h > 1.5  # so one truck cannot do it in the short shift...
    assert sum(1 for r in short_plan.routes if r) == 2  # ...and both trucks go out
    assert sum(1 for r in long_plan.routes if r) == 1  # one 7 h shift takes them all


def test_the_plan_says_why_it_uses_fewer_trucks_than_asked() -> None:
    depot, bins = _town_bins(20, seed=4)
    plan = plan_routes(depot, bins, vehicles=3, shift=SHIFT, time_limit_s=0.3)
    note = trucks_note(plan, asked=3, shift=SHIFT, capacity=None)
    used = [r for r in plan.routes if r]
    assert note["used"] == len(used) < 3 and note["asked"] == 3 and note["reason"] == "fit"
    assert note["bins"] == 20
    points = [depot, *bins]
    index = {p.id: i for i, p in enumerate(points)}
    matrix = distance_matrix(points)
    longest = max(_hours(matrix, [index[b] for b in r], SHIFT) for r in used)
    assert note["longest_h"] == pytest.approx(longest, abs=0.01)
    assert note["text"].startswith(f"{len(used)} of 3 trucks: the 20 bins to collect fit in")
    assert "shift of 7 h" in note["text"] or "shifts of 7 h" in note["text"]
    every = plan_routes(depot, bins, vehicles=1, time_limit_s=0.2)
    assert trucks_note(every, asked=1, shift=SHIFT, capacity=None)["reason"] is None
    empty = plan_routes(depot, [], vehicles=2, shift=SHIFT)
    assert trucks_note(empty, asked=2, shift=SHIFT, capacity=None)["reason"] == "none"
    assert trucks_note(empty, asked=2, shift=SHIFT, capacity=None, unserved=3)["reason"] == (
        "too_short"
    )


def test_the_round_of_every_bin_is_not_taken_when_it_overruns_the_shift() -> None:
    depot, bins = _town_bins(30, seed=6)
    every = plan_routes(depot, bins, vehicles=1, time_limit_s=0.3)
    matrix = distance_matrix([depot, *bins])
    tour_h = _hours(matrix, list(range(1, 31)), SHIFT)
    due = bins[::2]
    assert skipping(every, depot, due, capacity=None, detour=DEFAULT_DETOUR) is not None
    tight = Shift(hours=0.2, speed_kmh=20.0, stop_min=1.0)
    assert tour_h > 0.2
    assert skipping(every, depot, due, capacity=None, detour=DEFAULT_DETOUR, shift=tight) is None
