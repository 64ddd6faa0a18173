"""What a technician's verdict changes in a meter's model (docs/energy.md, "Feedback").

- **false alarm**: the excess the episode's flagged readings showed, in band-widths, becomes
  normal for that meter in the same context (day type and hour of the day, the town's calendar):
  a later reading in that context is flagged only beyond it, times `MARGIN`. Bounded: never
  more than `MAX_TOLERANCE` band-widths (a reading three band-widths out, which would be a
  critical alert, always alerts), for `TOLERANCE_DAYS` of readings after the episode (then the
  meter must be told again), and at most `MAX_ENTRIES` false alarms remembered per meter.
- **expected** (planned works, an event): no reading of the episode's period is learnt as normal,
  not even after the episode has lasted long enough to be relearnt; an episode still going on
  is kept out until it ends.
- **real**: nothing changes but what an earlier verdict on the same alert did, which is undone:
  the latest verdict counts.

Each verdict is applied once (the memory records the latest it applied per alert), so a replay
that offers it again changes nothing; everything here lives in the meter's state and is
checkpointed with it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.ml.anomaly import Explanation
from shared.runtime.feedback import OFFER_HORIZON, Feedback

# Kinds judged against the band (the stuck-meter rule is not: its false alarms are recorded,
# and change nothing yet).
HIGH = frozenset({"energy.consumption_high", "energy.consumption_off_hours"})
LOW = frozenset({"energy.consumption_low"})
# Room above the excess a false alarm showed: the same situation again is rarely identical.
MARGIN = 1.25
MAX_TOLERANCE = 3.0
TOLERANCE_DAYS = 28
MAX_ENTRIES = 8
# Flagged readings remembered for a verdict to come: a technician answers within days. At most
# a week of 15-minute readings, about 40 kB more in a checkpoint at worst (most meters hold none).
REMEMBER = timedelta(days=14)
REMEMBER_MAX = 700

Context = tuple[str, int]  # (day type, hour of the day), local time


@dataclass(slots=True)
class Flagged:
    ts: datetime
    kind: str
    context: Context
    excess: float  # beyond the expected value, in band-widths (> 1: outside the band)


@dataclass(slots=True)
class Tolerance:
    direction: str  # "high" or "low"
    by_context: dict[Context, float]
    until: datetime  # reading time after which it no longer holds


@dataclass(slots=True)
class Period:
    start: datetime
    end: datetime | None  # None: the episode was going on when the verdict was given


@dataclass
class FeedbackMemory:
    """A meter's verdicts and what they changed (a field of its state)."""

    # Per alert: the latest verdict applied (its id) and when it was given.
    applied: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    expected: dict[str, Period] = field(default_factory=dict)
    recent: deque[Flagged] = field(default_factory=deque)

    # ---- verdicts ---------------------------------------------------------------------------

    def apply(self, f: Feedback, *, received_at: datetime) -> bool:
        """Apply a verdict unless it (or a later one on its alert) already was: whether it
        was applied now."""
        # Verdicts too old to be offered again need no record.
        for alert_id, (_, given) in list(self.applied.items()):
            if received_at - given >= OFFER_HORIZON:
                del self.applied[alert_id]
        seen = self.applied.get(f.alert_id)
        if seen is not None and seen[0] >= f.id:
            return False
        self.applied[f.alert_id] = (f.id, f.given_at)
        # A change of mind replaces what the previous verdict on this alert did.
        self.tolerances.pop(f.alert_id, None)
        self.expected.pop(f.alert_id, None)
        if f.verdict == "false_alarm":
            self._false_alarm(f)
        elif f.verdict == "expected":
            self.expected[f.alert_id] = Period(f.episode_start, f.episode_end)
        return True

    def _false_alarm(self, f: Feedback) -> None:
        direction = _direction(f.kind)
        if direction is None:
            return
        end = f.episode_end
        by_context: dict[Context, float] = {}
        last: datetime | None = None
        for r in self.recent:
            if r.ts < f.episode_start or (end is not None and r.ts > end):
                continue
            if _direction(r.kind) != direction:
                continue
            wanted = min(MAX_TOLERANCE, r.excess * MARGIN)
            by_context[r.context] = max(by_context.get(r.context, 0.0), wanted)
            last = r.ts if last is None else max(last, r.ts)
        if last is None:
            return  # nothing of that episode is remembered: nothing to recalibrate
        self.tolerances[f.alert_id] = Tolerance(
            direction, by_context, until=(end or last) + timedelta(days=TOLERANCE_DAYS)
        )
        while len(self.tolerances) > MAX_ENTRIES:
            del self.tolerances[min(self.tolerances, key=lambda a: self.tolerances[a].until)]

    # ---- per reading ------------------------------------------------------------------------

    def judge(
        self, *, ts: datetime, value: float, exp: Explanation, kind: str | None, context: Context
    ) -> str | None:
        """The reading's kind once false alarms are taken into account; flagged readings are
        remembered for a verdict to come."""
        direction = _direction(kind) if kind is not None else None
        if direction is not None and kind is not None:
            excess = _excess(value, exp, direction)
            allowed = max(
                (
                    t.by_context.get(context, 0.0)
                    for t in self.tolerances.values()
                    if t.direction == direction and ts <= t.until
                ),
                default=0.0,
            )
            if excess <= allowed:
                return None
            self.recent.append(Flagged(ts, kind, context, excess))
            while self.recent and (
                len(self.recent) > REMEMBER_MAX or ts - self.recent[0].ts > REMEMBER
            ):
                self.recent.popleft()
        self.tolerances = {a: t for a, t in self.tolerances.items() if ts <= t.until}
        return kind

    def learns(self, ts: datetime, *, default: bool, episode_open: bool) -> bool:
        """Whether the detector may learn this reading as normal: not in an expected period."""
        for alert_id, p in list(self.expected.items()):
            if p.end is None and not episode_open:
                # The expected episode is over: its period ends at its last reading.
                p.end = ts
            if p.start <= ts and (p.end is None or ts < p.end):
                return False
            if p.end is not None and ts - p.end > REMEMBER:
                del self.expected[alert_id]
        return default


def _direction(kind: str) -> str | None:
    return "high" if kind in HIGH else "low" if kind in LOW else None


def _excess(value: float, exp: Explanation, direction: str) -> float:
    """How far beyond the expected value, in band-widths (1.0: at the band's edge).

    >>> e = Explanation(expected=10, lower=8, upper=12, surprise=0, score=0)
    >>> _excess(15, e, "high"), _excess(7, e, "low")
    (2.5, 1.5)
    """
    if direction == "high":
        return (value - exp.expected) / max(exp.upper - exp.expected, 1e-9)
    return (exp.expected - value) / max(exp.expected - exp.lower, 1e-9)
