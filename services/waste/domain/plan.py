"""Collection rounds: which bins, and in which order each truck visits them.

Distances are great-circle (haversine) distances times a detour factor (streets are not
straight lines; 1.3 is a usual urban circuity). The routing is a capacitated vehicle routing
problem solved by OR-Tools' routing library: a nearest-neighbour solution is built first and
handed to the solver as its starting point, then guided local search improves it until the
time limit. So the answer is never worse than nearest neighbour, and the time is bounded.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

EARTH_RADIUS_M = 6_371_000.0
DEFAULT_DETOUR = 1.3


@dataclass(frozen=True, slots=True)
class Point:
    id: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class RoutePlan:
    # Per vehicle, the ids of the bins in visiting order (depot excluded, at both ends).
    routes: list[list[str]]
    route_m: list[float]
    distance_m: float
    nearest_neighbour_m: float
    solver: str
    seconds: float


def haversine_m(a: Point, b: Point) -> float:
    """Great-circle distance in metres.

    >>> round(haversine_m(Point("a", 45.899, 6.129), Point("b", 45.909, 6.129)))
    1112
    """
    la1, la2 = math.radians(a.lat), math.radians(b.lat)
    dla, dlo = la2 - la1, math.radians(b.lon - a.lon)
    h = math.sin(dla / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(dlo / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def leg_m(a: Point, b: Point, *, detour: float = DEFAULT_DETOUR) -> int:
    """Whole metres by road from `a` to `b` (the solver works on integers)."""
    return round(haversine_m(a, b) * detour)


def distance_matrix(points: Sequence[Point], *, detour: float = DEFAULT_DETOUR) -> list[list[int]]:
    """`leg_m` between every pair."""
    return [[leg_m(a, b, detour=detour) for b in points] for a in points]


def route_length(matrix: list[list[int]], route: Sequence[int]) -> int:
    """Depot (node 0) -> the nodes in order -> depot."""
    path = [0, *route, 0]
    return sum(matrix[i][j] for i, j in itertools.pairwise(path))


def nearest_neighbour(matrix: list[list[int]], *, vehicles: int, capacity: int) -> list[list[int]]:
    """Each truck in turn goes to the nearest unvisited bin until it is full.

    >>> m = distance_matrix([Point("d", 0, 0), Point("a", 0, 0.01), Point("b", 0, 0.02)])
    >>> nearest_neighbour(m, vehicles=1, capacity=5)
    [[1, 2]]
    """
    left = set(range(1, len(matrix)))
    routes: list[list[int]] = []
    for _ in range(vehicles):
        here, route = 0, list[int]()
        while left and len(route) < capacity:
            here = min(left, key=lambda j: (matrix[here][j], j))
            left.remove(here)
            route.append(here)
        routes.append(route)
    if left:
        raise ValueError("more bins than the trucks can take")
    return routes


def plan_routes(
    depot: Point,
    bins: Sequence[Point],
    *,
    vehicles: int = 1,
    capacity: int | None = None,
    time_limit_s: float = 2.0,
    detour: float = DEFAULT_DETOUR,
) -> RoutePlan:
    """Routes from `depot` through every bin and back, minimising the total distance.

    `capacity` is the number of bins a truck can empty in one round (None: no limit). Trucks
    that are not needed stay at the depot (empty routes).

    >>> d = Point("depot", 45.90, 6.12)
    >>> bins = [Point(f"b{i}", 45.90 + 0.003 * math.cos(i), 6.12 + 0.004 * math.sin(i))
    ...         for i in range(12)]
    >>> plan = plan_routes(d, bins, vehicles=2, capacity=8, time_limit_s=0.5)
    >>> sorted(b for r in plan.routes for b in r) == sorted(b.id for b in bins)
    True
    >>> plan.distance_m <= plan.nearest_neighbour_m
    True
    """
    started = time.perf_counter()
    if vehicles < 1:
        raise ValueError("at least one vehicle")
    cap = len(bins) if capacity is None else capacity
    if cap * vehicles < len(bins):
        raise ValueError("more bins than the trucks can take")
    points = [depot, *bins]
    matrix = distance_matrix(points, detour=detour)
    nn = nearest_neighbour(matrix, vehicles=vehicles, capacity=cap)
    nn_m = sum(route_length(matrix, r) for r in nn)
    best, solver = nn, "nearest neighbour"
    if len(bins) >= 2:
        solved = _solve(
            matrix, vehicles=vehicles, capacity=cap, initial=nn, time_limit_s=time_limit_s
        )
        if solved is not None and sum(route_length(matrix, r) for r in solved) <= nn_m:
            best, solver = solved, "OR-Tools routing, guided local search from nearest neighbour"
    lengths = [float(route_length(matrix, r)) if r else 0.0 for r in best]
    return RoutePlan(
        routes=[[points[i].id for i in r] for r in best],
        route_m=lengths,
        distance_m=sum(lengths),
        nearest_neighbour_m=float(nn_m),
        solver=solver,
        seconds=round(time.perf_counter() - started, 3),
    )


def skipping(
    plan: RoutePlan, depot: Point, bins: Sequence[Point], *, capacity: int | None, detour: float
) -> RoutePlan | None:
    """`plan`'s routes through `bins` only, the other stops skipped, each truck's order kept.

    A round of more bins, skipping those not due, is a round of the due bins: never longer
    than the round of them all (up to a metre per skipped stop, distances being whole metres),
    and sometimes shorter than what the solver found for the due bins within its time limit.
    None when it would not visit every bin of `bins`, or a truck would take more than
    `capacity`.

    >>> d = Point("depot", 0, 0)
    >>> a, b, c = Point("a", 0, 0.01), Point("b", 0, 0.02), Point("c", 0, 0.03)
    >>> m = distance_matrix([d, a, b, c])
    >>> every = RoutePlan([["a", "b", "c"]], [0.0], 0.0, 0.0, "test", 0.0)
    >>> due = skipping(every, d, [a, c], capacity=None, detour=DEFAULT_DETOUR)
    >>> due.routes, due.distance_m == route_length(m, [1, 3])
    ([['a', 'c']], True)
    >>> skipping(every, d, [a, c], capacity=1, detour=DEFAULT_DETOUR) is None
    True
    """
    kept = {b.id: b for b in bins}
    routes = [[kept[s] for s in route if s in kept] for route in plan.routes]
    if sorted(b.id for r in routes for b in r) != sorted(kept):
        return None
    if capacity is not None and any(len(r) > capacity for r in routes):
        return None
    # Only the legs driven, not a matrix of every pair (an empty route is depot to depot: 0).
    lengths = [
        float(sum(leg_m(a, b, detour=detour) for a, b in itertools.pairwise([depot, *r, depot])))
        for r in routes
    ]
    return RoutePlan(
        routes=[[b.id for b in r] for r in routes],
        route_m=lengths,
        distance_m=sum(lengths),
        nearest_neighbour_m=plan.nearest_neighbour_m,
        solver=f"{plan.solver}, on every bin, skipping those not due",
        seconds=plan.seconds,
    )


def best_round(
    plan: RoutePlan,
    every: RoutePlan,
    depot: Point,
    bins: Sequence[Point],
    *,
    capacity: int | None,
    detour: float,
) -> RoutePlan:
    """The shorter of `plan` (through `bins`) and `every` skipping the bins not in `bins`.

    The two are solved side by side, sharing the time limit and the cores: the round of every
    bin, skipping the others, is sometimes the shorter round of the due ones (CI once saw the
    plan come out 2.1 km longer than visiting every bin).
    """
    shortcut = skipping(every, depot, bins, capacity=capacity, detour=detour)
    if shortcut is None or shortcut.distance_m >= plan.distance_m:
        return plan
    return dataclasses.replace(
        shortcut, nearest_neighbour_m=plan.nearest_neighbour_m, seconds=plan.seconds
    )


def _solve(
    matrix: list[list[int]],
    *,
    vehicles: int,
    capacity: int,
    initial: list[list[int]],
    time_limit_s: float,
) -> list[list[int]] | None:
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    manager = pywrapcp.RoutingIndexManager(len(matrix), vehicles, 0)
    routing = pywrapcp.RoutingModel(manager)

    def distance(i: int, j: int) -> int:
        return matrix[int(manager.IndexToNode(i))][int(manager.IndexToNode(j))]

    transit = routing.RegisterTransitCallback(distance)
    routing.SetArcCostEvaluatorOfAllVehicles(transit)

    def demand(i: int) -> int:
        return 0 if manager.IndexToNode(i) == 0 else 1

    demand_cb = routing.RegisterUnaryTransitCallback(demand)
    routing.AddDimensionWithVehicleCapacity(demand_cb, 0, [capacity] * vehicles, True, "bins")
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    # Guided local search never stops by itself: the time limit is what bounds the answer.
    params.time_limit.FromMilliseconds(max(1, int(time_limit_s * 1000)))
    routing.CloseModelWithParameters(params)
    start = routing.ReadAssignmentFromRoutes(initial, True)
    solution = (
        routing.SolveFromAssignmentWithParameters(start, params)
        if start is not None
        else routing.SolveWithParameters(params)
    )
    if solution is None:
        return None
    routes = []
    for v in range(vehicles):
        index, route = routing.Start(v), list[int]()
        index = solution.Value(routing.NextVar(index))
        while not routing.IsEnd(index):
            route.append(manager.IndexToNode(index))
            index = solution.Value(routing.NextVar(index))
        routes.append(route)
    return routes


@dataclass(frozen=True, slots=True)
class BinStatus:
    id: str
    lat: float | None
    lon: float | None
    level: float
    full_at: datetime | None


def due_bins(bins: Sequence[BinStatus], *, next_round_at: datetime) -> list[BinStatus]:
    """Bins over the threshold, or predicted to be before the next round: most urgent first.

    >>> from datetime import UTC, timedelta
    >>> t = datetime(2026, 3, 3, 5, tzinfo=UTC)
    >>> bins = [BinStatus("a", 0, 0, 85.0, t - timedelta(hours=3)),
    ...         BinStatus("b", 0, 0, 60.0, t + timedelta(hours=30)),
    ...         BinStatus("c", 0, 0, 70.0, t + timedelta(hours=12)),
    ...         BinStatus("d", 0, 0, 10.0, None)]
    >>> [b.id for b in due_bins(bins, next_round_at=t + timedelta(days=1))]
    ['a', 'c']
    """
    due = [b for b in bins if b.full_at is not None and b.full_at < next_round_at]
    return sorted(due, key=lambda b: (b.full_at, -b.level, b.id))
