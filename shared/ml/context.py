"""A contextual anomaly detector: how well the recent past predicts the present, per reading.

The idea is Mikhail Smirnov's Contextual Anomaly Detector (CAD OSE, https://github.com/smirmik/CAD,
run by Numenta's NAB as ``context_ose``); this is our own implementation of it, online from the
first reading, as a River anomaly detector.

How a reading is scored:

1. the value is quantised into ``2 ** bits`` levels of the range seen so far; each bit of the
   level is a *fact* (``2 * position + bit``);
2. a *context* pairs a left group of facts (the previous reading's facts plus the contexts that
   were active then, as "neuron" facts) with a right group (facts that followed it). Every
   reading stores the context (previous left group -> current facts) and the intersections of
   partially matching contexts, so recurring sequences are learnt at several lengths;
3. of the contexts whose left side matched the previous step (they *predicted* this reading),
   the share whose right side now matches in full is how familiar the present is; the share of
   candidate new contexts that really are new is how novel it is. The score is
   ``(1 - familiar + novel) / 2``, and 0 when the strongest contexts predicted every fact;
4. after a raw score of ``alarm`` or more, the detector stays quiet for ``rest`` readings: one
   event, one alarm (NAB counts only the first detection in a window, and every further one
   outside it is a false positive; an operator wants the same).

Unlike CAD OSE in NAB, which is given each file's minimum and maximum before it starts, the range
grows with what has been seen, so the detector needs nothing ahead of time; once it is fixed, a
reading beyond every one seen before is an alarm of its own (what a known range gives CAD OSE:
levels that only the extremes reach).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping
from typing import Any

from river import base

# Neuron facts (active contexts) live above every value fact.
_NEURON = 1 << 20


class ContextDetector(base.AnomalyDetector):
    """Contextual anomaly detector on one numeric feature (CAD's method, online).

    Parameters
    ----------
    on
        The feature holding the reading.
    bits
        Bits of the quantised value: 3 (eight levels) is CAD OSE's setting.
    rest
        Readings kept quiet after an alarm. 150 is NAB's probationary period divided by five
        (CAD OSE's own rule) for a file of 5,000 readings or more, fixed before any run.
    alarm
        Raw score that starts a rest period (CAD OSE's 0.75).
    max_left
        Longest left group stored for a derived context (CAD OSE's 7).
    max_active
        Active contexts fed back as facts into the next left group (CAD OSE's 15).
    lo, hi
        The sensor's range when it is known (a fill level is 0-100%); else it is learnt: the
        range grows with what has been seen.
    headroom
        When a reading leaves the learnt range, the range grows past it by this share of the
        new span: fewer changes of scale (each one makes every context look new).
    calibration
        Readings after which a learnt range stops growing (0: never stops); later readings
        outside it fall in the lowest or highest level. A fixed scale keeps every learnt
        context valid. 750 (about a week of 15-minute readings) was the best of the settings
        tried on half A of NAB (see BENCHMARKS.md).
    relearn
        Forget the contexts learnt while the range was still growing, once it is fixed (they
        describe levels that no longer exist), and stay quiet while relearning.
    margin
        At the end of the calibration the range is widened by this share of its span on each
        side: room for what the calibration did not see, normal readings in the middle levels.
    overflow
        A reading outside the fixed range also gets a fact of its own for how far out it is
        (side, and the power of two of the distance in levels), instead of only the lowest or
        highest level: a spike past everything the calibration saw is then a new fact, not the
        top level that normal readings also reach.
    extremes
        Once the range is fixed, a reading beyond every reading seen so far is an alarm by
        itself (score 1), whatever the contexts say: past the fixed range every such reading
        falls in the top or bottom level, where the contexts cannot tell it from the highest
        normal readings. It has its own rest (a climb of new records is one alarm), apart from
        the contexts' rest: neither silences the other. On by default: the best of the
        settings tried on half A of NAB (BENCHMARKS.md).

    Examples
    --------
    >>> det = ContextDetector(rest=10)
    >>> scores = []
    >>> for i in range(600):
    ...     x = {"value": 1000.0 if i == 500 else float(i % 5)}
    ...     scores.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> max(scores[400:500]) < 0.5 < scores[500]
    True
    """

    def __init__(
        self,
        on: str = "value",
        bits: int = 3,
        rest: int = 150,
        alarm: float = 0.75,
        max_left: int = 7,
        max_active: int = 15,
        lo: float | None = None,
        hi: float | None = None,
        headroom: float = 0.0,
        calibration: int = 750,
        margin: float = 0.0,
        relearn: bool = False,
        overflow: bool = False,
        extremes: bool = True,
    ) -> None:
        self.on = on
        self.bits = bits
        self.rest = rest
        self.alarm = alarm
        self.max_left = max_left
        self.max_active = max_active
        self.lo = lo
        self.hi = hi
        self.headroom = headroom
        self.calibration = calibration
        self.margin = margin
        self.relearn = relearn
        self.overflow = overflow
        self.extremes = extremes
        # Every reading seen (the fixed range stops following them).
        self._min, self._max = math.inf, -math.inf
        self._extreme_at: int | None = None
        self._lo = math.inf if lo is None else lo
        self._hi = -math.inf if hi is None else hi
        self._forget()
        self._steps = 0
        self._scored: tuple[Any, ...] | None = None

    def _forget(self) -> None:
        """An empty context memory, quiet for `rest` readings (what it knows is gone)."""
        # Semi-contexts: fact groups, indexed by fact; a left one maps right ids to contexts.
        self._left_ids: dict[tuple[int, ...], int] = {}
        self._left_len: list[int] = []
        self._left_ctx: list[dict[int, int]] = []
        self._left_facts: list[tuple[int, ...]] = []
        self._left_by_fact: dict[int, list[int]] = {}
        # Each left semi-context also filed under its largest fact (a neuron when it has one,
        # which few groups share): finding the fully matched ones then costs little.
        self._left_by_key: dict[int, list[int]] = {}
        # The same, for left semi-contexts of observed contexts only (and those contexts' right
        # ids): only they seed derived contexts.
        self._observed_left_by_fact: dict[int, list[int]] = {}
        self._observed_rights: list[list[int]] = []
        self._right_ids: dict[tuple[int, ...], int] = {}
        self._right_facts: list[tuple[int, ...]] = []
        self._right_by_fact: dict[int, list[int]] = {}
        # Per context: facts it predicted, facts that came true, full matches, right id, and
        # whether it was ever observed whole (only those seed derived contexts).
        self._predicted: list[int] = []
        self._hits: list[int] = []
        self._matches: list[int] = []
        self._right_of: list[int] = []
        self._observed: list[bool] = []
        self._left_group: tuple[int, ...] = ()
        # Left semi-contexts fully matched by the last left group.
        self._full: list[int] = []
        self._expected: frozenset[int] = frozenset()
        # Recent raw scores; starts "alarmed" so the first readings stay quiet, like CAD OSE.
        self._recent: collections.deque[float] = collections.deque([1.0], maxlen=max(self.rest, 1))

    @classmethod
    def _unit_test_params(cls) -> Any:
        # River's checks feed the credit-card data set: score its amounts.
        yield {"on": "Amount", "rest": 20}

    # ---- encoding -----------------------------------------------------------------------------

    def _facts(self, value: float) -> tuple[int, ...]:
        top = (1 << self.bits) - 1
        out = 0
        if math.isnan(value) or not self._lo < self._hi:
            level = 0
        else:
            raw = (value - self._lo) / ((self._hi - self._lo) / top)
            level = min(max(int(raw), 0), top)
            if self.overflow and not self._lo <= value <= self._hi:
                side = 0 if raw > top else 1
                distance = raw - top if side == 0 else -raw
                out = 2 * self.bits + 2 * min(int(math.log2(1.0 + distance)), 15) + side
        facts = tuple(2 * i + ((level >> i) & 1) for i in range(self.bits))
        return (*facts, out) if out else facts

    def _value(self, x: Mapping[Any, Any]) -> float:
        value = x.get(self.on)
        return math.nan if value is None else float(value)

    # ---- the step, read-only part -------------------------------------------------------------

    def _context_id(self, left: tuple[int, ...], right: tuple[int, ...]) -> int | None:
        lid, rid = self._left_ids.get(left), self._right_ids.get(right)
        if lid is None or rid is None:
            return None
        return self._left_ctx[lid].get(rid)

    def _partial(self) -> list[tuple[int, tuple[int, ...]]]:
        """Left semi-contexts of observed contexts that the last left group matched in part
        (at most `max_left` facts), with the facts matched: they seed derived contexts.

        Only needed when a new context appears, so computed then, not at every reading.
        """
        matched: dict[int, list[int]] = {}
        for f in self._left_group:
            for lid in self._observed_left_by_fact.get(f, ()):
                matched.setdefault(lid, []).append(f)
        return [
            (lid, tuple(m))
            for lid, m in matched.items()
            if len(m) <= self.max_left and len(m) < self._left_len[lid]
        ]

    def _cross(
        self, facts: tuple[int, ...], *, learn: bool
    ) -> tuple[float, list[int], list[tuple[tuple[int, ...], tuple[int, ...]]]]:
        """Raw score, active contexts and candidate new contexts for `facts`.

        With `learn`, also counts what the fully matched contexts predicted and got right.
        """
        right_hits: dict[int, list[int]] = {}
        for f in facts:
            for rid in self._right_by_fact.get(f, ()):
                right_hits.setdefault(rid, []).append(f)
        zero = (self._left_group, facts)
        new_zero = bool(self._left_group) and self._context_id(*zero) is None
        selected, active = 0, []
        candidates: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        for lid in self._full:
            matched = self._left_facts[lid]
            seeds = new_zero and len(matched) <= self.max_left
            contexts = self._left_ctx[lid]
            selected += len(contexts)
            for rid, cid in contexts.items():
                size = len(self._right_facts[rid])
                hits = right_hits.get(rid)
                if learn:
                    self._predicted[cid] += size
                if not hits:
                    continue
                if learn:
                    self._hits[cid] += len(hits)
                if len(hits) == size:
                    if learn:
                        self._matches[cid] += 1
                    active.append(cid)
                elif seeds and self._observed[cid]:
                    candidates.append((matched, tuple(hits)))
        novel = 0.0
        if new_zero:
            for lid, matched in self._partial():
                for rid in self._observed_rights[lid]:
                    if hits := right_hits.get(rid):
                        candidates.append((matched, tuple(hits)))
            unique = set(candidates)
            unique.discard(zero)
            added = 1 + sum(self._context_id(*c) is None for c in unique)
            novel = added / (len(unique) + 1)
        familiar = len(active) / selected if selected else 0.0
        surprised = any(f not in self._expected for f in facts)
        raw = (1.0 - familiar + novel) / 2.0 if surprised else 0.0
        return raw, active, candidates

    def _count(self, facts: tuple[int, ...]) -> None:
        """What the fully matched contexts predicted, and how much of it came true."""
        present = set(facts)
        for lid in self._full:
            for rid, cid in self._left_ctx[lid].items():
                right = self._right_facts[rid]
                hits = sum(f in present for f in right)
                self._predicted[cid] += len(right)
                self._hits[cid] += hits
                if hits == len(right):
                    self._matches[cid] += 1

    @property
    def _fixed(self) -> bool:
        """The calibration is over: the range no longer follows the readings."""
        return 0 < self.calibration <= self._steps

    def _extreme(self, value: float) -> float:
        """1 for a reading beyond every one seen, once the range is fixed (`extremes`)."""
        beyond = value > self._max or value < self._min
        resting = self._extreme_at is not None and self._steps - self._extreme_at <= self.rest
        return 1.0 if self.extremes and self._fixed and beyond and not resting else 0.0

    def score_one(self, x: Mapping[Any, Any]) -> float:
        value = self._value(x)
        facts = self._facts(value)
        raw, active, candidates = self._cross(facts, learn=False)
        # The usual call is score_one(x) then learn_one(x): learning reuses this work.
        self._scored = (self._steps, facts, raw, active, candidates)
        return max(raw if max(self._recent) < self.alarm else 0.0, self._extreme(value))

    # ---- the step, learning -------------------------------------------------------------------

    def _add(self, left: tuple[int, ...], right: tuple[int, ...], *, observed: bool) -> None:
        lid = self._left_ids.get(left)
        if lid is None:
            lid = self._left_ids[left] = len(self._left_len)
            self._left_len.append(len(left))
            self._left_facts.append(left)
            self._left_ctx.append({})
            self._observed_rights.append([])
            for f in left:
                self._left_by_fact.setdefault(f, []).append(lid)
            self._left_by_key.setdefault(left[-1], []).append(lid)
        rid = self._right_ids.get(right)
        if rid is None:
            rid = self._right_ids[right] = len(self._right_facts)
            self._right_facts.append(right)
            for f in right:
                self._right_by_fact.setdefault(f, []).append(rid)
        cid = self._left_ctx[lid].get(rid)
        if cid is None:
            cid = self._left_ctx[lid][rid] = len(self._right_of)
            self._predicted.append(0)
            self._hits.append(0)
            self._matches.append(0)
            self._right_of.append(rid)
            self._observed.append(observed)
        elif observed:
            self._observed[cid] = True
        if observed and rid not in self._observed_rights[lid]:
            self._observed_rights[lid].append(rid)
            if len(self._observed_rights[lid]) == 1:
                for f in left:
                    self._observed_left_by_fact.setdefault(f, []).append(lid)

    def learn_one(self, x: Mapping[Any, Any]) -> None:
        value = self._value(x)
        facts = self._facts(value)
        if self._scored is not None and self._scored[:2] == (self._steps, facts):
            raw, active, candidates = self._scored[2:]
            self._count(facts)
        else:
            raw, active, candidates = self._cross(facts, learn=True)
        if self._extreme(value):
            self._extreme_at = self._steps
        self._scored = None
        self._steps += 1
        self._recent.append(raw)
        if self._left_group:
            self._add(self._left_group, facts, observed=True)
        for left, right in candidates:
            self._add(left, right, observed=False)
        # The most often confirmed contexts carry the sequence forward as facts.
        active.sort(key=lambda c: (self._matches[c], c))
        neurons = [_NEURON + c for c in active[-self.max_active :]]
        self._left_group = tuple(sorted({*facts, *neurons}))
        group = set(self._left_group)
        self._full = [
            lid
            for f in self._left_group
            for lid in self._left_by_key.get(f, ())
            if group.issuperset(self._left_facts[lid])
        ]
        # What comes next: the right sides of the best-confirmed fully matched contexts.
        best, expected = 0.0, set()
        for lid in self._full:
            for cid in self._left_ctx[lid].values():
                weight = self._hits[cid] / self._predicted[cid] if self._predicted[cid] else 0.0
                if weight > best:
                    best, expected = weight, set(self._right_facts[self._right_of[cid]])
                elif weight == best:
                    expected.update(self._right_facts[self._right_of[cid]])
        self._expected = frozenset(expected)
        if not math.isnan(value):
            self._min, self._max = min(self._min, value), max(self._max, value)
            if not self._fixed:
                self._grow(value)
        if self._steps == self.calibration and self._lo <= self._hi:
            span = self._hi - self._lo
            self._lo, self._hi = self._lo - self.margin * span, self._hi + self.margin * span
            if self.relearn:
                self._forget()

    def _grow(self, value: float) -> None:
        if self._lo > self._hi:  # the first reading
            self._lo = self._hi = value
        elif value > self._hi:
            self._hi = value + self.headroom * (value - self._lo)
        elif value < self._lo:
            self._lo = value - self.headroom * (self._hi - value)
