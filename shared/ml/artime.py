"""ARTime: an adaptive-resonance anomaly detector, online, as a River anomaly detector.

The method is Mark Hampton's ARTime (https://github.com/markNZed/ARTimeNAB.jl, AGPL-3.0, which
this project's licence, AGPL-3.0-or-later, can carry), run by Numenta's NAB as ``ARTime``: 74.9
on NAB's scoreboard, the best published. This module follows that code step by step, in Python,
with two changes so that it needs nothing ahead of time; NAB hands ARTime each file's minimum,
maximum and length, a town's sensor has none of them.

How a reading is scored:

1. every ``step`` readings (the probation's length over ``window * 13``) the last ``step``
   readings are summed up by their extreme (the maximum or the minimum, whichever is farther
   from a running average; their mean if it is within 10 % of it), scaled into the range,
   quantised into ``levels`` levels and snapped to a running median level when within
   ``chomp`` of it;
2. the last ``window`` such values, min-max normalised, with their Haar wavelet coefficients,
   are a feature vector;
3. a dual-vigilance fuzzy ART network (categories of complement-coded feature vectors) either
   resonates with categories (similarity above the upper vigilance: they learn it), adds a
   category to the best one's cluster (between the two vigilances), or starts a new cluster:
   that is the anomaly, scored by how far below both vigilances the best match was and how far
   the latest value is from the best category's;
4. the vigilances follow the recent similarities; after an anomaly and after a new cluster,
   further ones are masked for a while unless they match much worse.

Changes: ARTime learns its first readings (NAB's probation, 15 % of the file) at once, in the
file's range; here the first ``probation`` readings are learnt at once when the last of them
arrives, in the range they span (or a known ``lo``/``hi``). After them a reading beyond every
one seen so far is an alarm of its own (``records``, as in `ContextDetector`), which the fixed
range could not otherwise see. ``probation`` (300) was chosen on half A of NAB, ``record_rest``
(150) kept from `ContextDetector` after two others tried there (BENCHMARKS.md, with the
out-of-sample half B).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import base

_SQRT2 = math.sqrt(2.0)


def haar(x: np.ndarray) -> np.ndarray:
    """Orthonormal Haar transform to the last level: approximation, then details, coarsest first.

    A detail is the second of a pair less the first, as in Wavelets.jl's
    ``dwt(x, wavelet(WT.haar))``, which ARTime uses: with the opposite sign, ARTime as NAB runs
    it scored 72.8 instead of its published 74.9 (with this one, 74.85; BENCHMARKS.md).

    >>> haar(np.array([1.0, 1.0, 1.0, 3.0])).round(6).tolist()
    [3.0, 1.0, 0.0, 1.414214]
    """
    details = []
    a = x
    while len(a) > 1:
        first, second = a[0::2], a[1::2]
        details.append((second - first) / _SQRT2)
        a = (first + second) / _SQRT2
    return np.concatenate([a, *reversed(details)])


class Resonance:
    """ARTime's dual-vigilance fuzzy ART: categories of complement-coded feature vectors.

    The network starts with one category of ones, and its first input only primes it (ARTime's
    skipped first sample). Only whether an input starts a new cluster matters to the detector,
    so clusters are not labelled.
    """

    def __init__(self, dim: int, capacity: int = 1 << 30) -> None:
        self.dim = dim
        self.capacity = capacity
        self.weights = np.ones((1, 2 * dim))
        # When each category last learnt (a count of inputs learnt): at `capacity` categories, a
        # new one replaces the one that has gone longest without learning.
        self.used = np.zeros(1, dtype=np.int64)
        self.clock = 0
        self.primed = False
        self.lower = 0.0
        self.upper = 0.0

    def match(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(input, its meet with each category, match of each category, energy similarity)."""
        x = np.concatenate([f, 1.0 - f])
        w = self.weights
        meet = np.minimum(x, w)
        size = w.sum(axis=1)
        size[size == 0] = 0.001
        similarity = meet.sum(axis=1) / size
        # The "energy" is the latest value (last feature) and its complement.
        last, last_c = self.dim - 1, 2 * self.dim - 1
        energy_w = w[:, last] + w[:, last_c]
        energy = np.divide(
            meet[:, last] + meet[:, last_c],
            energy_w,
            out=np.zeros(len(w)),
            where=energy_w > 0,
        )
        return x, meet, similarity**3 * energy**2, energy

    @staticmethod
    def best(m: np.ndarray, energy: np.ndarray) -> tuple[float, float]:
        j = int(np.argmax(m))
        return (float(m[j]), float(energy[j])) if m[j] > 0 else (0.0, 0.0)

    def learn(self, x: np.ndarray, meet: np.ndarray, m: np.ndarray) -> bool:
        """Learn one input; True if it starts a new cluster."""
        self.clock += 1
        resonant = m >= self.upper
        if resonant.any():
            self.weights[resonant] = meet[resonant]  # fast commit
            self.used[resonant] = self.clock
            return False
        if len(self.weights) < self.capacity:
            self.weights = np.vstack([self.weights, x])
            self.used = np.append(self.used, self.clock)
        else:
            stale = int(np.argmin(self.used))
            self.weights[stale], self.used[stale] = x, self.clock
        return bool(m.max() < self.lower)

    def batch(self, rows: np.ndarray) -> list[float]:
        """Learn rows in order (the first primes the network); each one's best match."""
        out = []
        for f in rows:
            if not self.primed:
                self.primed = True
                out.append(0.0)
                continue
            x, meet, m, energy = self.match(f)
            out.append(self.best(m, energy)[0])
            self.learn(x, meet, m)
        return out


@dataclass
class _Step:
    """A downsampled step worked out by `score_one`, for `learn_one` to apply."""

    at: int
    value: float
    mean: float
    bins: list[int]
    median: tuple[int, int, int]
    ds: float  # the step's value as the features see it (scaled, quantised, snapped)
    features: np.ndarray
    matched: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None


class ARTimeDetector(base.AnomalyDetector):
    """ARTime (adaptive resonance) on one numeric feature, needing nothing ahead of time.

    Parameters
    ----------
    on
        The feature holding the reading.
    probation
        Readings learnt at once before any score (ARTime: NAB's probation, 15 % of the file up
        to 750). Their range is the scale, unless `lo` and `hi` are given. 300 was the best of
        the settings tried on half A of NAB.
    window
        Downsampled values in a feature vector (ARTime's 8).
    windows_per_probation
        Feature windows the probation spans: sets the downsampling step (ARTime's 13).
    levels
        Quantisation levels of the range (ARTime's 80).
    chomp
        A value this close to the running median level is taken as it (ARTime's 0.075).
    initial_vigilance
        Vigilance with which the probation's features are first clustered (ARTime's 0.8).
    records
        After the probation, a reading beyond every one seen so far is an alarm (score 1).
    record_rest
        Readings after a record alarm during which another record does not alarm (150:
        `ContextDetector`'s rest; 75 and 300 did no better on half A of NAB).
    lo, hi
        The sensor's range when it is known; else the probation's.
    max_categories
        Categories the network keeps (ARTime: no bound; a file of NAB makes at most a few
        hundred, a sensor read for years would make them without end); past it a new category
        replaces the one that has gone longest without learning. Each costs
        ``2 * window * 2 * 8`` bytes: 256 bytes, 256 kB at 1,024.

    Examples
    --------
    >>> import math
    >>> det = ARTimeDetector(probation=200)
    >>> scores = []
    >>> for i in range(1500):
    ...     v = math.sin(i / 10) + (3.0 if i == 1000 else 0.0)
    ...     scores.append(det.score_one({"value": v}))
    ...     det.learn_one({"value": v})
    >>> [i for i, s in enumerate(scores) if s > 0.5]  # two sine peaks above the probation's
    [204, 644, 1000]
    """

    def __init__(
        self,
        on: str = "value",
        probation: int = 300,
        window: int = 8,
        windows_per_probation: int = 13,
        levels: int = 80,
        chomp: float = 0.075,
        initial_vigilance: float = 0.8,
        records: bool = True,
        record_rest: int = 150,
        lo: float | None = None,
        hi: float | None = None,
        max_categories: int = 1024,
    ) -> None:
        if window < 2 or window & (window - 1):
            raise ValueError("window must be a power of two (Haar transform)")
        if probation < 2 * window:
            raise ValueError("probation must be at least two windows")
        if max_categories < 2:
            raise ValueError("max_categories must be at least 2")
        self.on = on
        self.probation = probation
        self.window = window
        self.windows_per_probation = windows_per_probation
        self.levels = levels
        self.chomp = chomp
        self.initial_vigilance = initial_vigilance
        self.records = records
        self.record_rest = record_rest
        self.lo = lo
        self.hi = hi
        self.max_categories = max_categories

        even = probation - probation % 2
        self._step = max(1, even // (window * windows_per_probation))
        self._trend = even // self._step
        self._mask = int(window * 1.5)
        self._buffer: list[float] | None = []
        self._lo = math.inf
        self._hi = -math.inf
        self._scale: tuple[float, float] = (0.0, 0.0)
        self._seen = 0
        self._record_at: int | None = None
        # ARTime's state, by its names where they help reading the two side by side.
        self._i = 1  # readings processed (1-based)
        self._dsi = 1  # downsampled steps (1-based)
        self._ds_window: deque[float] = deque([0.0] * self._step, maxlen=self._step)
        self._ds_mean = 0.0
        self._bins = [0] * (levels + 1)
        self._median = (0, 0, 0)  # level, readings below it, above it
        self._f_window: deque[float] = deque([0.0] * window, maxlen=window)
        self._trend_f: list[np.ndarray] = []
        self._art = Resonance(2 * window, max_categories)
        self._last_anomaly_i = 0
        self._last_anomaly_sim = 0.0
        self._last_rho_update_i = 0
        self._mask_after_cat = False
        self._no_new_cat = 0
        self._anomaly_sims: list[float] = []
        self._sims: deque[float] = deque(
            [1.0] * (self._trend // 2 + 1), maxlen=self._trend // 2 + 1
        )
        self._sim_diffs: deque[float] = deque([0.0] * (self._trend + 1), maxlen=self._trend + 1)
        self._sim_sum = 0.0
        self._sim_n = 0
        self._scored: _Step | None = None

    # ---- River's interface ------------------------------------------------------------------

    def _value(self, x: Mapping[Any, Any]) -> float | None:
        """The reading, or None without one (a missing or non-finite feature is not learnt)."""
        raw = x.get(self.on)
        if raw is None:
            return None
        value = float(raw)
        return value if math.isfinite(value) else None

    def score_one(self, x: Mapping[Any, Any]) -> float:
        value = self._value(x)
        if value is None or self._buffer is not None:
            return 0.0
        record = self._record(value)
        if self._i % self._step:
            return record
        step = self._prepare(value)
        self._scored = step
        assert step.matched is not None  # after the probation every step is matched
        _, _, m, energy = step.matched
        sim, energy_sim = Resonance.best(m, energy)
        new_cluster = self._dsi >= self.window and sim < self._art.lower
        return max(record, self._decide(self._dsi, sim, energy_sim, new_cluster))

    def learn_one(self, x: Mapping[Any, Any]) -> None:
        value = self._value(x)
        if value is None:
            return
        if self._buffer is not None:
            self._buffer.append(value)
            self._lo, self._hi = min(self._lo, value), max(self._hi, value)
            if len(self._buffer) >= self.probation:
                lo = self._lo if self.lo is None else self.lo
                hi = self._hi if self.hi is None else self.hi
                self._scale = (lo, hi - lo)
                buffer, self._buffer = self._buffer, None
                for v in buffer:
                    self._advance(v)
            return
        if self._record(value):
            self._record_at = self._seen
        self._seen += 1
        self._lo, self._hi = min(self._lo, value), max(self._hi, value)
        self._advance(value)

    # ---- the reading ------------------------------------------------------------------------

    def _record(self, value: float) -> float:
        beyond = value > self._hi or value < self._lo
        resting = self._record_at is not None and self._seen - self._record_at <= self.record_rest
        return 1.0 if self.records and beyond and not resting else 0.0

    def _advance(self, value: float) -> None:
        if self._i % self._step == 0:
            step = self._scored
            if step is None or (step.at, step.value) != (self._i, value):
                step = self._prepare(value)
            self._ds_window.append(value)
            self._ds_mean = step.mean
            self._bins = step.bins
            self._median = step.median
            self._f_window.append(step.ds)
            self._features(step)
            self._dsi += 1
        else:
            self._ds_window.append(value)
        self._scored = None
        self._i += 1

    def _prepare(self, value: float) -> _Step:
        """The downsampled step `value` completes, worked out without changing anything."""
        w = [*list(self._ds_window)[1:], value]
        mean = sum(w) / len(w)
        hi, lo = max(w), min(w)
        running = mean if self._dsi == 1 else self._ds_mean
        running = (running + mean) / 2
        ds = lo if abs(hi - running) < abs(lo - running) else hi
        if abs(ds - mean) < 0.1 * mean:  # a spike must stand 10 % out of the mean
            ds = mean
        offset, span = self._scale
        ds = ds - offset
        if span != 0:
            ds = ds / span
        level = round(min(1.0, max(0.0, ds)) * self.levels)
        ds = level / self.levels
        bins = self._bins.copy()
        median = self._step_median(bins, level)
        med = median[0] / self.levels
        if abs(ds - med) < self.chomp:
            ds = med
        f_window = [*list(self._f_window)[1:], ds]
        if self._dsi >= self.window:
            dw = np.array(f_window)
            dw = dw - dw.min()
            if (top := dw.max()) != 0:
                dw = dw / top
            fw = haar(dw)
            fw = fw - fw.min()
            if (top := fw.max()) != 0:
                fw = fw / top
            features = np.concatenate([fw, np.array(f_window)])
        else:
            features = np.zeros(2 * self.window)
        matched = self._art.match(features) if self._dsi > self._trend else None
        return _Step(self._i, value, running, bins, median, ds, features, matched)

    def _step_median(self, bins: list[int], level: int) -> tuple[int, int, int]:
        """ARTime's running median level ("not strictly a running median but close enough")."""
        bins[level] += 1
        med, below, above = self._median
        if self._dsi == 1:
            med = level
        if med > level:
            below += 1
        elif med < level:
            above += 1
        half = self._dsi // 2
        if half < above:
            below += bins[med]
            med += 1
            while bins[med] == 0:
                med += 1
            above -= bins[med]
        elif half < below:
            above += bins[med]
            med -= 1
            while bins[med] == 0:
                med -= 1
            below -= bins[med]
        return med, below, above

    # ---- resonance and the alarm -------------------------------------------------------------

    def _features(self, step: _Step) -> None:
        i = self._dsi
        if i > self._trend:
            self._detect(step.features, i, step.matched)
            return
        self._trend_f.append(step.features)
        if i == self._trend:
            rows = np.array(self._trend_f)
            self._trend_f = []
            vigilance = self._initial_rho(rows[self.window - 1 : self._trend])
            self._art.lower = self._art.upper = vigilance
            for fi, f in enumerate(rows, 1):
                self._detect(f, fi, None)

    def _initial_rho(self, rows: np.ndarray) -> float:
        """The probation's features, least typical first, clustered at `initial_vigilance`:
        their mean best match over the second half is the first vigilance."""
        norms = np.linalg.norm(rows, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = (rows @ rows.T) / np.outer(norms, norms)
        zero = norms == 0.0
        # ARTime's similarity of a zero vector with another: 1 - the other's norm.
        sim[zero, :] = 1.0 - norms[np.newaxis, :]
        sim[:, zero] = 1.0 - norms[:, np.newaxis]
        np.fill_diagonal(sim, 1.0)
        order = np.argsort(sim.sum(axis=0), kind="stable")
        art = Resonance(self._art.dim)
        art.lower = art.upper = self.initial_vigilance
        best = art.batch(rows[order])
        return float(np.mean(best[self._trend // 2 - 1 :]))

    def _decide(self, i: int, sim: float, energy_sim: float, new_cluster: bool) -> float:
        """The score of step `i`, from the state before it."""
        if i <= self._trend or not new_cluster:
            return 0.0
        after_anomaly = (i - self._last_anomaly_i) <= self._mask
        after_cat = self._mask_after_cat and not (
            i > self._trend + self._mask and self._no_new_cat >= self._mask
        )
        scale = 0.90 if after_anomaly else 0.70
        much_worse = sim < self._last_anomaly_sim * scale
        if (after_cat or after_anomaly) and not much_worse:
            return 0.0
        return self._confidence(sim, energy_sim)

    def _confidence(self, sim: float, energy_sim: float) -> float:
        sim = min(0.999, sim)
        ub = ((1 - sim) - (1 - self._art.upper)) / (1 - sim)
        lb = ((1 - sim) - (1 - self._art.lower)) / (1 - sim)
        return round(min(1.0, ub * 0.35 + lb * 0.65 + (1.0 - energy_sim) * 1.5), 6)

    def _detect(
        self,
        f: np.ndarray,
        i: int,
        matched: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None,
    ) -> None:
        art = self._art
        update_after_anomaly = (i - self._last_anomaly_i) == self._mask
        update_for_trend = (i - self._last_rho_update_i) >= self._trend // 2
        if not art.primed:
            art.primed = True
            sim, energy_sim, new_cluster = 0.0, 0.0, False
        else:
            x, meet, m, energy = art.match(f) if matched is None else matched
            sim, energy_sim = Resonance.best(m, energy)
            # The steps before a full window are matched, not learnt (ARTime: cat = -1).
            new_cluster = art.learn(x, meet, m) if i >= self.window else True
        anomaly = self._decide(i, sim, energy_sim, new_cluster)
        if i > self._trend + self._mask and self._no_new_cat >= self._mask:
            self._mask_after_cat = False
        self._no_new_cat = 0 if new_cluster else self._no_new_cat + 1
        self._sim_sum += sim
        self._sim_n += 1
        self._sims.append(sim)
        self._sim_diffs.append(art.upper - sim)
        if (i - self._last_anomaly_i) < self._mask and self._anomaly_sims:
            self._anomaly_sims[-1] = min(self._anomaly_sims[-1], sim)
        if anomaly:
            self._anomaly_sims.append(sim)
            self._last_anomaly_sim = sim
            self._last_anomaly_i = i
        self._mask_after_cat = new_cluster or self._mask_after_cat
        if i > self._trend and (update_after_anomaly or update_for_trend):
            self._update_vigilance(i)

    def _update_vigilance(self, i: int) -> None:
        art = self._art
        upper = min(0.97, self._sim_sum / self._sim_n)
        lower = art.lower
        least = min(self._sims)
        if lower <= least:
            lower += (least - lower) * 0.19
        else:
            decrease = 0.0
            if i > self._trend * 2:
                below = [min(0.37, d) for d in self._sim_diffs if d > 0.05]
                if below:
                    decrease = sum(below) / len(below)
            lower -= max(0.01, decrease) / 2
            if self._anomaly_sims:
                lower = max(sum(self._anomaly_sims) / len(self._anomaly_sims), lower)
        art.lower, art.upper = min(upper, lower), upper
        self._last_rho_update_i = i
        self._mask_after_cat = True
