"""Pure parts of the chaos benchmark: the fault schedule, readiness, and the reading accounting.

No I/O here, so `tests/bench/test_chaos.py` checks them without a stack.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# One fault at random among these (a kill picks its service at random in turn).
FAULT_KINDS = ("kill", "postgres", "kafka", "mosquitto", "disk")
INFRA = ("postgres", "kafka", "mosquitto")
# The outage length for infrastructure, and how long Kafka's disk stays full.
DOWN_S = (10.0, 30.0)
DISK_FULL_S = 60.0

# A reading is known by its device and timestamp (Unix seconds): one reading per message.
Key = tuple[str, int]


@dataclass(frozen=True)
class Fault:
    at_s: float  # planned start, seconds after the load started
    kind: str  # "kill", "down" or "disk"
    target: str  # a service, an infrastructure component, or "kafka" (its disk)
    hold_s: float  # how long the component stays down or the disk full; 0 for a kill

    @property
    def label(self) -> str:
        """
        >>> Fault(at_s=1, kind="down", target="kafka", hold_s=12.3).label
        'kafka down 12 s'
        >>> Fault(at_s=1, kind="kill", target="storage", hold_s=0).label
        'SIGKILL storage'
        """
        if self.kind == "kill":
            return f"SIGKILL {self.target}"
        if self.kind == "disk":
            return f"{self.target} disk full {self.hold_s:.0f} s"
        return f"{self.target} down {self.hold_s:.0f} s"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def plan_faults(
    *,
    seed: int,
    duration_s: float,
    every_s: float,
    jitter_s: float,
    warmup_s: float,
    services: Sequence[str],
    kinds: Sequence[str] = FAULT_KINDS,
    down_s: tuple[float, float] = DOWN_S,
    disk_s: float = DISK_FULL_S,
) -> list[Fault]:
    """The run's faults: the first after `warmup_s`, then one every `every_s` to
    `every_s + jitter_s` seconds, none starting in the last `every_s / 2` seconds (so the last
    one's recovery is still under load). The same seed gives the same schedule.

    >>> [f.label for f in plan_faults(seed=1, duration_s=400, every_s=100, jitter_s=0,
    ...                                warmup_s=50, services=["gateway"], kinds=["kill"])]
    ['SIGKILL gateway', 'SIGKILL gateway', 'SIGKILL gateway', 'SIGKILL gateway']
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    out: list[Fault] = []
    at = warmup_s
    while at <= duration_s - every_s / 2:
        kind = rng.choice(list(kinds))
        if kind == "kill":
            fault = Fault(at_s=at, kind="kill", target=rng.choice(list(services)), hold_s=0.0)
        elif kind == "disk":
            fault = Fault(at_s=at, kind="disk", target="kafka", hold_s=disk_s)
        else:
            fault = Fault(at_s=at, kind="down", target=kind, hold_s=round(rng.uniform(*down_s), 1))
        out.append(fault)
        at += every_s + rng.uniform(0, jitter_s)
        at = round(at, 1)
    return out


def recovery_s(
    samples: Sequence[tuple[float, bool]], *, end: float, stable_s: float
) -> float | None:
    """Seconds from `end` (a fault's end) until every service was ready and stayed so for
    `stable_s` (samples of (time, all ready), in time order); None if not yet.

    A component that returns may be ready at once and drop a moment later (a service notices
    the outage late and restarts): readiness counts once it holds.

    >>> s = [(0, False), (1, True), (2, False), (3, True), (4, True), (5, True), (6, True)]
    >>> recovery_s(s, end=0.5, stable_s=2)
    2.5
    >>> recovery_s(s, end=0.5, stable_s=5) is None
    True
    """
    times = [t for t, _ in samples]
    i = bisect.bisect_left(times, end)
    candidate: float | None = None
    for t, ready in samples[i:]:
        if not ready:
            candidate = None
            continue
        if candidate is None:
            candidate = t
        if t - candidate >= stable_s:
            return round(candidate - end, 2)
    return None


class CounterDelta:
    """What a Prometheus counter of a process that restarts added over a run: a value below the
    previous one is a restart (the counter began again at 0).

    >>> c = CounterDelta()
    >>> for v in (10, 12, 15, 3, 4):
    ...     c.feed(v)
    >>> c.total
    9.0
    """

    def __init__(self) -> None:
        self.prev: float | None = None
        self.total = 0.0

    def feed(self, value: float) -> None:
        if self.prev is not None:
            self.total += value - self.prev if value >= self.prev else value
        self.prev = value


def account(
    *,
    published: Iterable[Key],
    acked: set[Key],
    stored: set[Key],
    kafka_counts: Mapping[Key, int],
    resent: set[Key],
) -> dict[str, Any]:
    """Readings published, acknowledged, stored, lost and doubled.

    - lost: acknowledged (PUBACK received) and never stored: what the stack promised and lost;
    - unacknowledged and never stored: the device still holds them (not a loss of the stack);
    - doubled: more than one record on Kafka's readings topics for one (device, ts), counted
      before the database's unique key hides them; apart, those the device itself sent twice
      (in flight when its connection dropped: MQTT QoS 1 redelivers them, at least once by
      design) and those it sent once (the stack doubled them).

    >>> a = ("d", 1); b = ("d", 2); c = ("d", 3)
    >>> r = account(published=[a, b, c], acked={a, b}, stored={a, c},
    ...             kafka_counts={a: 2, c: 1}, resent={a})
    >>> r["lost_acked"], r["doubled"], r["doubled_resent_by_device"], r["doubled_sent_once"]
    (1, 1, 1, 0)
    """
    pub = set(published)
    doubled = {k for k, n in kafka_counts.items() if n > 1 and k in pub}
    lost = acked - stored
    return {
        "published": len(pub),
        "acknowledged": len(acked & pub),
        "stored": len(stored & pub),
        "stored_not_published": len(stored - pub),
        "lost_acked": len(lost),
        "not_acked_not_stored": len(pub - acked - stored),
        "not_acked_but_stored": len((pub - acked) & stored),
        "on_kafka": sum(1 for k in pub if kafka_counts.get(k, 0) > 0),
        "acked_not_on_kafka": sum(1 for k in acked if kafka_counts.get(k, 0) == 0),
        "doubled": len(doubled),
        "extra_kafka_records": sum(kafka_counts[k] - 1 for k in doubled),
        "doubled_resent_by_device": len(doubled & resent),
        "doubled_sent_once": len(doubled - resent),
        "lost_keys": sorted(lost),
        "doubled_sent_once_keys": sorted(doubled - resent),
    }


def attribute(times: Iterable[float], windows: Sequence[tuple[str, float]]) -> dict[str, int]:
    """Count events (publish times) by the fault that preceded them: `windows` are (label,
    start) in time order; events before the first fault count under "before any fault".

    >>> attribute([1, 5, 6, 12], [("a", 4), ("b", 10)])
    {'before any fault': 1, 'a': 2, 'b': 1}
    """
    starts = [s for _, s in windows]
    out: dict[str, int] = {}
    for t in times:
        i = bisect.bisect_right(starts, t) - 1
        label = windows[i][0] if i >= 0 else "before any fault"
        out[label] = out.get(label, 0) + 1
    return out
