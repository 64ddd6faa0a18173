"""NAB scoring, re-implemented from Numenta's code so our results are comparable to the scoreboard.

Followed, line by line, from numenta/NAB v1.1 (`nab/sweeper.py`, `nab/optimizer.py`,
`nab/runner.py: normalize`, `nab/util.py: getProbationPeriod`):

- Each file has labelled anomaly *windows*. The first ``probationary_length`` rows of a file
  (15% of its rows, at most 750) are not scored at all: a detector is still learning there.
- Every row gets a weight as if it were a detection ("sweep score"):
  inside a window, ``scaled_sigmoid(-(right - i + 1) / width) * A_TP / scaled_sigmoid(-1)``, so
  the window's first row is worth exactly ``A_TP`` and later rows less (but still > 0); outside
  windows, ``scaled_sigmoid((i - right_prev) / (width_prev - 1)) * A_FP`` where ``right_prev``
  and ``width_prev`` are those of the preceding window, or ``-A_FP`` when no window precedes it.
- At a threshold ``T`` a row is a detection when its anomaly score is ``>= T``. A file's score is
  the sum of the weights of its detections outside windows (all negative, the false positives),
  plus, per window, the weight of its *best* (= earliest) detection, or ``-A_FN`` when the window
  holds no detection.
- The threshold is optimised over the whole corpus, per profile: every distinct anomaly score is
  tried (plus 1.1, "detect nothing") and the best total wins; ties go to the higher threshold.
- ``normalised = 100 * (raw - null) / (perfect - null)``: ``null`` is the raw score of NAB's null
  detector (a constant 0.5, thresholded optimally: it detects nothing), ``perfect`` is
  ``A_TP`` times the number of labelled windows.

One deliberate difference: NAB crashes (``None.score``) when a file's scores all lie above the
corpus threshold; here that file simply counts all its rows as detections, which is what the
threshold means. It never happens with NAB's own detectors.

Examples
--------
>>> costs = CostMatrix(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
>>> labels = FileLabels(name="demo.csv", n_rows=100, windows=((40, 49),))
>>> scores = [0.0] * 100
>>> scores[40] = 0.9          # caught at the start of the window
>>> scores[20] = 0.8          # a false positive before any window
>>> f = labels.scored(scores, costs)
>>> round(score_file(f, 0.9).score, 4), round(score_file(f, 0.8).score, 4)
(1.0, 0.89)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

PROBATION_PERCENT = 0.15
# NAB caps the probationary period at 15% of 5000 rows = 750 rows.
PROBATION_CAP_ROWS = 5000
# "Detect nothing": NAB's sweep starts above any score in [0, 1].
NO_DETECTION_THRESHOLD = 1.1
# The null detector's constant score (nab/detectors/null/null_detector.py).
NULL_SCORE = 0.5

NO_WINDOW = -1
PROBATIONARY = -2


@dataclass(frozen=True, slots=True)
class CostMatrix:
    """A scoring profile's weights (A_TP, A_FP, A_FN; NAB never uses the TN weight)."""

    tp_weight: float
    fp_weight: float
    fn_weight: float


def load_profiles(path: Path) -> dict[str, CostMatrix]:
    """NAB's `config/profiles.json`: ``{"standard": {"CostMatrix": {"tpWeight": ...}}, ...}``."""
    raw = json.loads(path.read_text())
    return {
        name: CostMatrix(
            tp_weight=float(p["CostMatrix"]["tpWeight"]),
            fp_weight=float(p["CostMatrix"]["fpWeight"]),
            fn_weight=float(p["CostMatrix"]["fnWeight"]),
        )
        for name, p in raw.items()
    }


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def scaled_sigmoid(position: float) -> float:
    """NAB's weight of a detection at a relative position (-1 = window start, 0 = its end).

    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), round(scaled_sigmoid(1.0), 5)
    (0.98661, 0.0, -0.98661)
    >>> scaled_sigmoid(3.5)  # a false positive far after a window
    -1.0
    """
    if position > 3.0:
        return -1.0
    return 2.0 * sigmoid(-5.0 * position) - 1.0


def probationary_length(n_rows: int, probation_percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file that are not scored.

    >>> probationary_length(4032), probationary_length(22695)
    (604, 750)
    """
    return int(min(math.floor(probation_percent * n_rows), probation_percent * PROBATION_CAP_ROWS))


def window_rows(
    timestamps: Sequence[datetime], limits: Iterable[tuple[datetime, datetime]]
) -> tuple[tuple[int, int], ...]:
    """Row indices (first, last) of each window, given its limiting timestamps.

    NAB requires both limits to be timestamps of the file (it looks them up with
    ``list.index``); a missing one is an error here rather than a silently skipped window.
    """
    first_row: dict[datetime, int] = {}
    for i, ts in enumerate(timestamps):
        first_row.setdefault(ts, i)
    rows = []
    for start, end in sorted(limits):
        if start not in first_row or end not in first_row:
            raise ValueError(f"window limit not among the file's timestamps: {start} / {end}")
        rows.append((first_row[start], first_row[end]))
    return tuple(rows)


def row_weights(
    *,
    n_rows: int,
    windows: Sequence[tuple[int, int]],
    costs: CostMatrix,
    probation_percent: float = PROBATION_PERCENT,
) -> tuple[list[float], list[int]]:
    """Each row's weight if it were a detection, and the window it belongs to.

    The window index is ``NO_WINDOW`` outside windows and ``PROBATIONARY`` for rows that are
    not scored. Mirrors ``Sweeper.calcSweepScore``.
    """
    max_tp = scaled_sigmoid(-1.0)
    probation = probationary_length(n_rows, probation_percent)
    start_of = {first: k for k, (first, _) in enumerate(windows)}
    weights: list[float] = []
    window_of: list[int] = []
    current: int | None = None
    prev_right: int | None = None
    prev_width: float | None = None
    for i in range(n_rows):
        if current is None and i in start_of:
            current = start_of[i]
        if current is not None:
            first, last = windows[current]
            width = float(last - first + 1)
            weight = scaled_sigmoid(-(last - i + 1) / width) * costs.tp_weight / max_tp
        elif prev_right is None or prev_width is None or prev_width <= 1:
            # No preceding window: as if very far from one. (NAB divides by zero after a
            # one-row window; treating it as far away is the only sensible reading.)
            weight = -1.0 * costs.fp_weight
        else:
            weight = scaled_sigmoid(abs(prev_right - i) / (prev_width - 1)) * costs.fp_weight
        weights.append(weight)
        if i < probation:
            window_of.append(PROBATIONARY)
        else:
            window_of.append(NO_WINDOW if current is None else current)
        if current is not None and i == windows[current][1]:
            prev_right, prev_width = i, float(windows[current][1] - windows[current][0] + 1)
            current = None
    return weights, window_of


@dataclass(frozen=True, slots=True)
class FileLabels:
    """What the corpus says about one data file: its length and its windows (row indices)."""

    name: str
    n_rows: int
    windows: tuple[tuple[int, int], ...]

    def scored(
        self,
        scores: Sequence[float],
        costs: CostMatrix,
        *,
        probation_percent: float = PROBATION_PERCENT,
    ) -> ScoredFile:
        """Attach a detector's anomaly scores (one per row) under a profile."""
        if len(scores) != self.n_rows:
            raise ValueError(f"{self.name}: {len(scores)} scores for {self.n_rows} rows")
        weights, window_of = row_weights(
            n_rows=self.n_rows,
            windows=self.windows,
            costs=costs,
            probation_percent=probation_percent,
        )
        return ScoredFile(
            name=self.name,
            scores=[float(s) for s in scores],
            weights=weights,
            window_of=window_of,
            fn_weight=costs.fn_weight,
        )


@dataclass(frozen=True, slots=True)
class ScoredFile:
    """One file's anomaly scores with the NAB weight and window of each row."""

    name: str
    scores: list[float]
    weights: list[float]
    window_of: list[int]
    fn_weight: float


@dataclass(frozen=True, slots=True)
class ThresholdScore:
    """Raw NAB score at a threshold, with NAB's row counts (tp/fn count rows, not windows)."""

    threshold: float
    score: float
    tp: int
    tn: int
    fp: int
    fn: int

    @property
    def total(self) -> int:
        return self.tp + self.tn + self.fp + self.fn


def sweep(files: Sequence[ScoredFile]) -> list[ThresholdScore]:
    """Scores at every candidate threshold, from 1.1 ("nothing") down to the lowest score.

    Mirrors ``Sweeper.calcScoreByThreshold`` over the rows of all ``files`` at once.
    """
    rows: list[tuple[float, float, tuple[int, int] | None]] = []
    window_part: dict[tuple[int, int], float] = {}
    for f_idx, f in enumerate(files):
        for s, w, win in zip(f.scores, f.weights, f.window_of, strict=True):
            if win == PROBATIONARY:
                continue
            key = None if win == NO_WINDOW else (f_idx, win)
            if key is not None:
                window_part[key] = -f.fn_weight
            rows.append((s, w, key))
    rows.sort(key=lambda r: r[0], reverse=True)

    tn = sum(1 for r in rows if r[2] is None)
    fn = len(rows) - tn
    tp = fp = 0
    fp_part = 0.0
    # A running total of the windows' parts: summing the dict at each threshold is quadratic.
    windows_total = math.fsum(window_part.values())
    out: list[ThresholdScore] = []
    threshold = NO_DETECTION_THRESHOLD
    for s, w, key in rows:
        if s != threshold:
            out.append(ThresholdScore(threshold, fp_part + windows_total, tp, tn, fp, fn))
            threshold = s
        if key is None:
            fp += 1
            tn -= 1
            fp_part += w
        else:
            tp += 1
            fn -= 1
            if w > window_part[key]:
                windows_total += w - window_part[key]
                window_part[key] = w
    out.append(ThresholdScore(threshold, fp_part + windows_total, tp, tn, fp, fn))
    return out


def best_threshold(scores: Sequence[ThresholdScore]) -> ThresholdScore:
    """The highest score; on a tie, the first (= higher) threshold, as NAB's stable sort gives."""
    return max(scores, key=lambda t: t.score)


def score_file(f: ScoredFile, threshold: float) -> ThresholdScore:
    """One file's raw score when rows scoring ``>= threshold`` are detections."""
    best: dict[int, float] = {}
    fp_part = 0.0
    tp = tn = fp = fn = 0
    for s, w, win in zip(f.scores, f.weights, f.window_of, strict=True):
        if win == PROBATIONARY:
            continue
        detected = s >= threshold
        if win == NO_WINDOW:
            if detected:
                fp += 1
                fp_part += w
            else:
                tn += 1
        else:
            best.setdefault(win, -f.fn_weight)
            if detected:
                tp += 1
                best[win] = max(best[win], w)
            else:
                fn += 1
    return ThresholdScore(threshold, fp_part + math.fsum(best.values()), tp, tn, fp, fn)


def normalise(raw: float, *, null: float, perfect: float) -> float:
    """NAB's 0-100 scale: the null detector scores 0, the perfect one 100."""
    return 100.0 * (raw - null) / (perfect - null)


@dataclass(frozen=True, slots=True)
class ProfileResult:
    """A detector's result on the corpus under one profile."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    score: float
    per_file: dict[str, ThresholdScore] = field(default_factory=dict)


def score_corpus(
    *,
    labels: Mapping[str, FileLabels],
    scores: Mapping[str, Sequence[float]],
    profiles: Mapping[str, CostMatrix],
    probation_percent: float = PROBATION_PERCENT,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, ProfileResult]:
    """Optimise the threshold per profile over the corpus, then score every file with it.

    ``scores`` must cover every file of ``labels`` (NAB scores the whole corpus or nothing).
    ``thresholds`` (per profile) are used as given instead: a threshold chosen on one part of
    the corpus, applied to another, gives an out-of-sample score.
    """
    missing = set(labels) - set(scores)
    if missing:
        raise ValueError(f"no anomaly scores for {len(missing)} files, e.g. {sorted(missing)[0]}")
    n_windows = sum(len(lab.windows) for lab in labels.values())
    results: dict[str, ProfileResult] = {}
    for profile, costs in profiles.items():
        files = [
            labels[name].scored(scores[name], costs, probation_percent=probation_percent)
            for name in sorted(labels)
        ]
        if thresholds is not None:
            chosen = thresholds[profile]
        else:
            chosen = best_threshold(sweep(files)).threshold
        per_file = {f.name: score_file(f, chosen) for f in files}
        raw = math.fsum(t.score for t in per_file.values())
        null_files = [
            labels[name].scored(
                [NULL_SCORE] * labels[name].n_rows, costs, probation_percent=probation_percent
            )
            for name in sorted(labels)
        ]
        null = best_threshold(sweep(null_files)).score
        perfect = n_windows * costs.tp_weight
        results[profile] = ProfileResult(
            profile=profile,
            threshold=chosen,
            raw=raw,
            null=null,
            perfect=perfect,
            score=normalise(raw, null=null, perfect=perfect),
            per_file=per_file,
        )
    return results
