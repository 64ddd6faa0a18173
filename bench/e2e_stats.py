"""Pure helpers of the end-to-end benchmark: percentiles, pacing, the rate search, payloads.

No I/O here, so `tests/bench/test_e2e_helpers.py` can check them without a stack.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# The town's device mix (README: mostly bins, some meters, few traffic counters).
DEFAULT_SHARES: dict[str, float] = {"energy": 0.2, "waste": 0.7, "traffic": 0.1}
METRICS: dict[str, str] = {"energy": "energy_kwh", "waste": "fill_pct", "traffic": "vehicles"}


def percentiles(
    values: Iterable[float], qs: Sequence[float] = (50, 95, 99)
) -> dict[str, float | None]:
    """Linear-interpolation percentiles (numpy's default), None for an empty sample.

    >>> percentiles([1, 2, 3, 4, 5], (50, 100))
    {'p50': 3.0, 'p100': 5.0}
    >>> percentiles([], (50,))
    {'p50': None}
    """
    data = sorted(values)
    out: dict[str, float | None] = {}
    for q in qs:
        key = f"p{q:g}"
        if not data:
            out[key] = None
            continue
        pos = (len(data) - 1) * q / 100
        lo, hi = math.floor(pos), math.ceil(pos)
        out[key] = float(data[lo] + (data[hi] - data[lo]) * (pos - lo))
    return out


def over_time(
    samples: Iterable[tuple[float, float]], slice_s: float
) -> list[dict[str, float | int | None]]:
    """Percentiles of (publish time, latency ms) samples per slice of the run, so a tail can be
    told apart: spread over the run (a rate the stack cannot hold) or bunched in a few slices
    (a pause: a checkpoint, a rebalance, a cold start).

    >>> [(s["from_s"], s["n"], s["p99_ms"]) for s in over_time([(0, 10), (0.5, 30), (1.2, 500)], 1)]
    [(0, 2, 29.8), (1, 1, 500.0)]
    """
    data = sorted(samples)
    if not data:
        return []
    start = data[0][0]
    slices: dict[int, list[float]] = {}
    for t, ms in data:
        slices.setdefault(int((t - start) // slice_s), []).append(ms)
    out: list[dict[str, float | int | None]] = []
    for k in sorted(slices):
        q = percentiles(slices[k], (50, 99))
        out.append(
            {
                "from_s": round(k * slice_s, 1),
                "n": len(slices[k]),
                "p50_ms": None if q["p50"] is None else round(q["p50"], 1),
                "p99_ms": None if q["p99"] is None else round(q["p99"], 1),
                "max_ms": round(max(slices[k]), 1),
            }
        )
    return out


def before_after(
    samples: Iterable[tuple[float, float]], at_s: float
) -> dict[str, dict[str, float | int | None]]:
    """p50/p99 of (publish time, latency ms) samples published in the first `at_s` seconds of
    the run, and after: when the devices are new, their first readings come in the first
    seconds (every new model is built then), which a steady rate does not repeat.

    >>> r = before_after([(0, 900), (1, 10), (6, 20), (7, 40)], 5)
    >>> r["first"]["n"], r["first"]["p99_ms"], r["after"]["p99_ms"]
    (2, 891.1, 39.8)
    """
    data = sorted(samples)
    start = data[0][0] if data else 0.0
    parts: dict[str, list[float]] = {"first": [], "after": []}
    for t, ms in data:
        parts["first" if t - start < at_s else "after"].append(ms)
    out: dict[str, dict[str, float | int | None]] = {}
    for name, values in parts.items():
        q = percentiles(values, (50, 99))
        out[name] = {
            "n": len(values),
            **{f"{k}_ms": None if v is None else round(v, 1) for k, v in q.items()},
        }
    return out


def due(rate: float, elapsed_s: float) -> int:
    """Messages that should have been sent `elapsed_s` into a window at `rate` per second.

    The pacer sends whatever is due at each tick, so the aggregate rate stays exact however
    late a tick wakes up (a late tick sends a small burst instead of drifting).

    >>> due(1000, 0.0105)
    10
    >>> due(1000, -1)
    0
    """
    if elapsed_s <= 0 or rate <= 0:
        return 0
    # A hair of slack so that 0.3 * 1000 (299.99999...) counts 300 messages.
    return math.floor(rate * elapsed_s + 1e-9)


@dataclass
class StepSearch:
    """Step the offered rate up a ladder until a step is not sustained, then refine.

    After the first failure, `refine` bisections between the best sustained rate and the lowest
    failed one narrow the answer (each costs one more short step).

    >>> s = StepSearch([500, 1000, 2000, 4000], refine=1)
    >>> s.next(), s.record(500, True), s.next(), s.record(1000, True), s.next()
    (500, None, 1000, None, 2000)
    >>> s.record(2000, False); s.next()
    1500
    >>> s.record(1500, True); s.next() is None, s.best
    (True, 1500)
    """

    ladder: Sequence[float]
    refine: int = 1
    history: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def best(self) -> float | None:
        ok = [r for r, good in self.history if good]
        return max(ok) if ok else None

    @property
    def lowest_failed(self) -> float | None:
        bad = [r for r, good in self.history if not good]
        return min(bad) if bad else None

    def record(self, rate: float, sustained: bool) -> None:
        self.history.append((rate, sustained))

    def next(self) -> float | None:
        """The next rate to try, or None when the search is over."""
        failed = self.lowest_failed
        if failed is None:
            tried = {r for r, _ in self.history}
            for rate in self.ladder:
                if rate not in tried:
                    return rate
            return None
        best = self.best
        bisections = sum(1 for r, _ in self.history if r not in self.ladder)
        if best is None or bisections >= self.refine:
            return None
        mid = round((best + failed) / 2)
        if mid in (best, failed):
            return None
        return mid


@dataclass
class Quiet:
    """Whether the machine has been quiet long enough: busy below `cores` for `for_s` seconds.

    >>> q = Quiet(cores=0.5, for_s=3)
    >>> samples = [(0, 1.8), (1, 0.4), (2, 0.3), (3, 0.9), (4, 0.2), (5, 0.1), (6, 0.3), (7, 0.2)]
    >>> [q.sample(t, busy) for t, busy in samples]
    [False, False, False, False, False, False, False, True]
    """

    cores: float
    for_s: float
    since: float | None = None

    def sample(self, t: float, busy_cores: float) -> bool:
        """One measurement of the machine's busy cores at time `t` (seconds)."""
        if busy_cores >= self.cores:
            self.since = None
            return False
        if self.since is None:
            self.since = t
        return t - self.since >= self.for_s


def domain_plan(n: int, shares: dict[str, float] = DEFAULT_SHARES) -> list[str]:
    """`n` domains in the given proportions (largest remainder), interleaved.

    Interleaving means any contiguous slice (a worker's share, a latency sample) has the same mix.

    >>> plan = domain_plan(10)
    >>> sorted((d, plan.count(d)) for d in set(plan))
    [('energy', 2), ('traffic', 1), ('waste', 7)]
    >>> domain_plan(5, {"energy": 1.0})
    ['energy', 'energy', 'energy', 'energy', 'energy']
    """
    total = sum(shares.values())
    exact = {d: n * s / total for d, s in shares.items()}
    counts = {d: math.floor(x) for d, x in exact.items()}
    left = n - sum(counts.values())
    for d in sorted(exact, key=lambda d: exact[d] - counts[d], reverse=True)[:left]:
        counts[d] += 1
    # Weighted round robin: at each position take the domain furthest behind its share.
    placed = dict.fromkeys(counts, 0)
    out: list[str] = []
    for i in range(n):
        d = max(
            (d for d in counts if placed[d] < counts[d]),
            key=lambda d: counts[d] * (i + 1) / n - placed[d],
        )
        placed[d] += 1
        out.append(d)
    return out


def sample_per_domain(domains: Sequence[str], every: int) -> list[int]:
    """Every n-th device of each domain (a plain stride could miss a domain entirely).

    >>> sample_per_domain(["energy", "waste", "waste", "energy", "waste"], 2)
    [0, 1, 4]
    """
    seen: dict[str, int] = {}
    out: list[int] = []
    for i, d in enumerate(domains):
        if seen.get(d, 0) % every == 0:
            out.append(i)
        seen[d] = seen.get(d, 0) + 1
    return out


def split(domains: Sequence[str], parts: int) -> list[list[int]]:
    """Deal device indices to `parts` workers, each domain round robin (same mix in each).

    >>> split(["energy", "waste", "energy", "waste", "waste"], 2)
    [[0, 1, 4], [2, 3]]
    """
    out: list[list[int]] = [[] for _ in range(parts)]
    dealt: dict[str, int] = {}
    for i, d in enumerate(domains):
        k = dealt.get(d, 0)
        out[k % parts].append(i)
        dealt[d] = k + 1
    return [sorted(x) for x in out]


def reading_value(domain: str, device: int, ts: int) -> float:
    """A smooth, plausible value: a daily cycle per device, so models see no anomaly storm.

    Not constant either (a meter repeating one value is a "stuck meter" for the energy model).

    >>> 0 <= reading_value("waste", 3, 1_700_000_000) <= 100
    True
    """
    day = (ts % 86400) / 86400
    wiggle = ((device * 7919 + ts // 60) % 13) / 13  # deterministic small noise
    cycle = math.sin(2 * math.pi * (day + device / 97))
    if domain == "energy":
        return round(2.0 + 1.2 * cycle + 0.2 * wiggle, 3)
    if domain == "waste":
        return round(50 + 30 * cycle + 5 * wiggle, 1)
    return float(round(40 + 30 * cycle + 6 * wiggle))


def single_payload(*, domain: str, device: int, ts: int) -> bytes:
    """One reading, flat JSON with a Unix-seconds timestamp.

    >>> single_payload(domain="traffic", device=1, ts=1_700_000_040)
    b'{"ts":1700000040,"vehicles":31.0}'
    """
    value = reading_value(domain, device, ts)
    return b'{"ts":%d,"%s":%r}' % (ts, METRICS[domain].encode(), value)


def senml_payload(
    *, domain: str, device: int, device_id: str, ts0: int, step_s: int, n: int
) -> bytes:
    """`n` readings of one device as a SenML pack: absolute base time, relative offsets.

    >>> import json
    >>> pack = json.loads(senml_payload(domain="energy", device=0, device_id="m-1",
    ...                                 ts0=1_700_000_000, step_s=60, n=3))
    >>> [r.get("t", 0) for r in pack], pack[0]["bn"], pack[1]["n"]
    ([0, 60, 120], 'urn:dev:id:m-1:', 'energy_kwh')
    """
    metric = METRICS[domain]
    recs = [
        b'{"bn":"urn:dev:id:%s:","bt":%d,"n":"%s","v":%r}'
        % (device_id.encode(), ts0, metric.encode(), reading_value(domain, device, ts0))
    ]
    for k in range(1, n):
        ts = ts0 + k * step_s
        recs.append(
            b'{"n":"%s","t":%d,"v":%r}'
            % (metric.encode(), k * step_s, reading_value(domain, device, ts))
        )
    return b"[" + b",".join(recs) + b"]"


def sustained(
    *,
    target_rate: float,
    achieved_rate: float,
    published: int,
    acked: int,
    expected_rows: int,
    stored: int,
    scored: int | None,
    expected_scored: int | None,
    min_rate_fraction: float = 0.95,
) -> tuple[bool, list[str]]:
    """Whether a step counts as sustained, and why not.

    Sustained: the generator really offered the rate, every message was acknowledged, and every
    reading was stored (and scored) by the end of the grace period.

    >>> sustained(target_rate=1000, achieved_rate=999, published=10, acked=10, expected_rows=10,
    ...           stored=10, scored=2, expected_scored=2)
    (True, [])
    >>> sustained(target_rate=1000, achieved_rate=700, published=10, acked=9, expected_rows=10,
    ...           stored=10, scored=None, expected_scored=None)[1]
    ['offered 700/s < 95% of 1000/s', '1 not acknowledged']
    """
    why: list[str] = []
    if achieved_rate < min_rate_fraction * target_rate:
        why.append(
            f"offered {achieved_rate:.0f}/s < {min_rate_fraction:.0%} of {target_rate:.0f}/s"
        )
    if acked < published:
        why.append(f"{published - acked} not acknowledged")
    if stored < expected_rows:
        why.append(f"{expected_rows - stored} not stored")
    if expected_scored is not None and (scored or 0) < expected_scored:
        why.append(f"{expected_scored - (scored or 0)} not scored")
    return (not why, why)


def bottleneck(
    cpu_cores: dict[str, float], *, cores: int, machine_busy_cores: float | None
) -> dict[str, object]:
    """Which part bounds throughput, from each process's CPU use (in cores) at the limit.

    A Python service is single-threaded where it matters (the GIL): near one core it is the
    bound whatever the machine has left. Otherwise, a machine with no idle CPU is the bound.

    >>> bottleneck({"gateway": 0.97, "kafka": 0.4}, cores=2, machine_busy_cores=1.6)["bound"]
    'gateway'
    >>> bottleneck({"gateway": 0.6, "kafka": 0.7}, cores=2, machine_busy_cores=1.95)["bound"]
    'machine CPU (all cores busy)'
    """
    busiest = max(cpu_cores, key=lambda k: cpu_cores[k]) if cpu_cores else None
    single = {"gateway", "storage", "energy", "api", "alerts"}
    bound = "unclear (no process or core saturated)"
    if busiest is not None and busiest in single and cpu_cores[busiest] >= 0.9:
        bound = busiest
    elif machine_busy_cores is not None and machine_busy_cores >= 0.9 * cores:
        bound = "machine CPU (all cores busy)"
    elif busiest is not None and cpu_cores[busiest] >= 0.9:
        bound = busiest
    return {
        "bound": bound,
        "busiest_process": busiest,
        "busiest_cores": round(cpu_cores[busiest], 3) if busiest else None,
        "machine_busy_cores": machine_busy_cores,
        "cores": cores,
    }
