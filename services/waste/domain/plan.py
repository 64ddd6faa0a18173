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
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

EARTH_RADIUS_M = 6_371_000.0
DEFAULT_DETOUR = 1.3


@dataclass(frozen=True, slots=True)
class Point:
    id: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Shift:
    """What one truck can do in a round: its crew's shift, driving speed, time at each bin.

    >>> Shift(hours=7.0, speed_kmh=18.0, stop_min=1.0).route_s(9_000, 30)
    3600.0
    """

    hours: float
    speed_kmh: float
    stop_min: float

    @property
    def seconds(self) -> int:
        return int(self.hours * 3600)

    def leg_s(self, metres: float) -> int:
        return round(metres / (self.speed_kmh / 3.6))

    def route_s(self, metres: float, stops: int) -> float:
        """Time of a route of `metres` through `stops` bins (driving plus emptying)."""
        return metres / (self.speed_kmh / 3.6) + stops * self.stop_min * 60


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


def time_matrix(matrix: list[list[int]], shift: Shift) -> list[list[int]]:
    """Seconds from node i to node j: driving, plus emptying bin i (the depot, node 0, is free)."""
    stop_s = round(shift.stop_min * 60)
    return [[shift.leg_s(m) + (stop_s if i else 0) for m in row] for i, row in enumerate(matrix)]


def nearest_neighbour(
    matrix: list[list[int]], *, vehicles: int, capacity: int, shift: Shift | None = None
) -> list[list[int]]:
    """Each truck in turn goes to the nearest unvisited bin until it is full (or, with a
    `shift`, until the next bin would bring it back to the depot after the shift's end).

    >>> m = distance_matrix([Point("d", 0, 0), Point("a", 0, 0.01), Point("b", 0, 0.02)])
    >>> nearest_neighbour(m, vehicles=1, capacity=5)
    [[1, 2]]
    >>> short = Shift(hours=0.32, speed_kmh=20.0, stop_min=1.0)  # 19 min: one bin and back
    >>> nearest_neighbour(m, vehicles=2, capacity=5, shift=short)
    [[1], [2]]
    """
    times = time_matrix(matrix, shift) if shift is not None else None
    left = set(range(1, len(matrix)))
    routes: list[list[int]] = []
    for _ in range(vehicles):
        here, route, spent = 0, list[int](), 0
        while left and len(route) < capacity:
            nxt = min(left, key=lambda j: (matrix[here][j], j))
            if times is not None and shift is not None:
                if spent + times[here][nxt] + times[nxt][0] > shift.seconds:
                    break
                spent += times[here][nxt]
            here = nxt
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
    shift: Shift | None = None,
    time_limit_s: float = 2.0,
    detour: float = DEFAULT_DETOUR,
) -> RoutePlan:
    """Routes from `depot` through every bin and back, minimising the total distance.

    `capacity` is the number of bins a truck can empty in one round (None: no limit), `shift`
    the time a truck has (None: no limit). Trucks that are not needed stay at the depot (empty
    routes): with the distance as the only cost, a truck more only adds its drive from and
    back to the depot, so the plan uses as few as fit. `ValueError` when the bins do not fit
    (see `fitting` for how many do).

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
    nn = nearest_neighbour(matrix, vehicles=vehicles, capacity=cap, shift=shift)
    nn_m = sum(route_length(matrix, r) for r in nn)
    best, solver = nn, "nearest neighbour"
    if len(bins) >= 2:
        solved = _solve(
            matrix,
            vehicles=vehicles,
            capacity=cap,
            times=None if shift is None else (time_matrix(matrix, shift), shift.seconds),
            initial=nn,
            time_limit_s=time_limit_s,
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


def fitting(
    depot: Point,
    bins: Sequence[Point],
    *,
    vehicles: int,
    capacity: int | None,
    shift: Shift | None,
    detour: float = DEFAULT_DETOUR,
) -> int:
    """How many of `bins`, taken in their order (most urgent first), the trucks can collect.

    Judged by the nearest-neighbour routes (the solver's starting point, so what fits here
    fits the solver too): the largest such prefix, by bisection.

    >>> d = Point("d", 0, 0)
    >>> bins = [Point("a", 0, 0.01), Point("b", 0, 0.02), Point("c", 0, 0.03)]
    >>> fitting(d, bins, vehicles=1, capacity=None, shift=None)
    3
    >>> fitting(d, bins, vehicles=1, capacity=2, shift=None)
    2
    >>> fitting(d, bins, vehicles=2, capacity=None, shift=Shift(0.32, 20.0, 1.0))
    2
    """
    room = len(bins) if capacity is None else min(len(bins), capacity * vehicles)
    if shift is None:
        return room
    matrix = distance_matrix([depot, *bins[:room]], detour=detour)

    def fits(k: int) -> bool:
        sub = [row[: k + 1] for row in matrix[: k + 1]]
        try:
            nearest_neighbour(sub, vehicles=vehicles, capacity=capacity or k, shift=shift)
        except ValueError:
            return False
        return True

    low, high = 0, room
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def trucks_note(
    plan: RoutePlan,
    *,
    asked: int,
    shift: Shift | None,
    capacity: int | None,
    unserved: int = 0,
) -> dict[str, Any]:
    """How many trucks the plan uses of those asked, and why not all of them.

    `reason` is None when every truck is used, else "none" (no bin to collect), "too_short"
    (bins are due but none fits in a truck's shift or load) or "fit" (the bins fit in fewer
    trucks' shifts or loads; another truck would only add its drive from and back to the
    depot); `text` says it in English, the console in the user's language.

    >>> plan = RoutePlan([["a", "b"], []], [7200.0, 0.0], 7200.0, 7200.0, "test", 0.0)
    >>> note = trucks_note(plan, asked=2, shift=Shift(7.0, 20.0, 1.5), capacity=None)
    >>> note["used"], note["reason"], note["longest_h"]
    (1, 'fit', 0.41)
    >>> note["text"]
    '1 of 2 trucks: the 2 bins to collect fit in 1 shift of 7 h (the longest route takes 0.41 h)'
    """
    used = sum(1 for r in plan.routes if r)
    bins = sum(len(r) for r in plan.routes)
    longest_s = max(
        (
            shift.route_s(m, len(r)) if shift is not None else 0.0
            for r, m in zip(plan.routes, plan.route_m, strict=True)
        ),
        default=0.0,
    )
    note: dict[str, Any] = {
        "asked": asked,
        "used": used,
        "bins": bins,
        "shift_h": None if shift is None else shift.hours,
        "speed_kmh": None if shift is None else shift.speed_kmh,
        "stop_min": None if shift is None else shift.stop_min,
        "capacity_bins": capacity,
        "longest_h": None if shift is None else round(longest_s / 3600, 2),
        "reason": None,
        "text": None,
    }
    if used >= asked:
        return note
    if bins == 0 and unserved:
        note["reason"] = "too_short"
        note["text"] = f"0 of {asked} trucks: no bin to collect fits in one truck's shift or load"
        return note
    if bins == 0:
        note["reason"] = "none"
        note["text"] = f"0 of {asked} trucks: no bin to collect in this round"
        return note
    note["reason"] = "fit"
    limits = []
    if shift is not None:
        plural = "s" if used > 1 else ""
        limits.append(f"{used} shift{plural} of {shift.hours:g} h")
    if capacity is not None:
        limits.append(f"{used} x {capacity} bins")
    where = " and ".join(limits) or f"{used} truck{'s' if used > 1 else ''}"
    text = f"{used} of {asked} trucks: the {bins} bins to collect fit in {where}"
    if shift is not None:
        text += f" (the longest route takes {note['longest_h']:g} h)"
    note["text"] = text
    return note


def skipping(
    plan: RoutePlan,
    depot: Point,
    bins: Sequence[Point],
    *,
    capacity: int | None,
    detour: float,
    shift: Shift | None = None,
) -> RoutePlan | None:
    """`plan`'s routes through `bins` only, the other stops skipped, each truck's order kept.

    A round of more bins, skipping those not due, is a round of the due bins: never longer
    than the round of them all (up to a metre per skipped stop, distances being whole metres),
    and sometimes shorter than what the solver found for the due bins within its time limit.
    None when it would not visit every bin of `bins`, or a truck would take more than
    `capacity` or its `shift`.

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
    if shift is not None and any(
        shift.route_s(m, len(r)) > shift.seconds for r, m in zip(routes, lengths, strict=True)
    ):
        return None
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
    shift: Shift | None = None,
) -> RoutePlan:
    """The shorter of `plan` (through `bins`) and `every` skipping the bins not in `bins`.

    The two are solved side by side, sharing the time limit and the cores: the round of every
    bin, skipping the others, is sometimes the shorter round of the due ones (CI once saw the
    plan come out 2.1 km longer than visiting every bin).
    """
    shortcut = skipping(every, depot, bins, capacity=capacity, detour=detour, shift=shift)
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
    times: tuple[list[list[int]], int] | None,
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
    if times is not None:
        seconds, shift_s = times

        def duration(i: int, j: int) -> int:
            return seconds[int(manager.IndexToNode(i))][int(manager.IndexToNode(j))]

        routing.AddDimension(routing.RegisterTransitCallback(duration), 0, shift_s, True, "time")
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


def next_round(day: date, weekdays: Collection[int]) -> date:
    """The first round day after `day` (weekdays: 0 is Monday); rounds on no day: a day later.

    >>> friday = date(2026, 3, 6)
    >>> next_round(friday, range(5)), next_round(friday, range(7))
    (datetime.date(2026, 3, 9), datetime.date(2026, 3, 7))
    """
    for ahead in range(1, 8):
        candidate = day + timedelta(days=ahead)
        if candidate.weekday() in weekdays:
            return candidate
    return day + timedelta(days=1)


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
