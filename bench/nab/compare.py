"""Several anomaly detectors over the NAB corpus in one run, one scorer, one honest protocol.

    python -m bench.nab.compare                       # every detector in DETECTORS
    python -m bench.nab.compare --only context        # one of them
    python -m bench.nab.compare --half A --only context  # the tuning half only

Protocol (fixed before any detector was run on NAB):

- The corpus is split in two halves: within each category, files sorted by name, even positions
  form half **A** (for choosing parameters), odd positions half **B** (never looked at while
  choosing). ``split_halves`` is the rule.
- Each detector is scored three ways, per NAB profile: on the **whole** corpus with the
  threshold optimised over the whole corpus (NAB's own protocol, comparable to its
  scoreboard), on **A** with A's optimal threshold, and on **B with A's threshold**
  (out-of-sample: neither parameters nor threshold saw B).
- Every series is streamed through a fresh detector, one reading at a time: score (before
  learning), then learn. Time per reading is the detector's own, measured in the worker.

Writes ``bench/results/nab_compare.json`` (per-detector summaries and per-file raw scores; the
per-row scores are not kept: 365k rows x detectors would grow the repository for no reader).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import RESULTS, command_line, data_dir, run_meta, write_result
from bench.nab.corpus import Corpus, load_corpus, parse_timestamp
from bench.nab.run import PROFILE_KEYS, Detector, load_factory
from shared.ml.nab_scoring import FileLabels, ProfileResult, score_corpus

# name -> (factory spec, what it is)
DETECTORS: dict[str, tuple[str, str]] = {
    "context": (
        "shared.ml.context:ContextDetector",
        "ContextDetector (CAD's contexts; range learnt over the first 750 readings, then fixed; "
        "after them a reading beyond every one seen so far alarms by itself; 150 readings of "
        "rest after an alarm)",
    ),
    "hst": (
        "bench.nab.compare:half_space_trees",
        "River HalfSpaceTrees on the value, min-max scaled online (River's defaults, seed 42)",
    ),
    "residual": (
        "shared.ml.anomaly:make_detector",
        "ResidualDetector('generic'): the previous detector (forecast residual, likelihood)",
    ),
    # NAB hands every detector its file's min/max before the first reading (CAD OSE's 69.9 and
    # HTM's 70.1 on NAB's scoreboard were run so): the same detector under that protocol, for a
    # comparison with the scoreboard on equal terms. It looks ahead: not a product setting.
    "cad-oracle": (
        "bench.nab.compare:context_with_file_range",
        "ContextDetector given each file's min/max and NAB's rest (probation/5), as NAB runs "
        "CAD OSE: looks ahead, a check of the implementation, not a product setting",
    ),
    "artime": (
        "shared.ml.artime:ARTimeDetector",
        "ARTimeDetector (ARTime's adaptive resonance; the first 300 readings learnt at once, "
        "their range then fixed; a record alarms, 150 readings of rest)",
    ),
    # ARTime as NAB runs it: each file's min/max, and its probation from the file's length.
    "artime-oracle": (
        "bench.nab.compare:artime_with_file_range",
        "ARTimeDetector given each file's min/max and NAB's probation (15% of the file, at most "
        "750), records off, as NAB runs ARTime: looks ahead, a check of the implementation, "
        "not a product setting",
    ),
}
# Settings tried on half A only (python -m bench.nab.compare --half A --only NAME); kept so the
# tuning can be re-run.
CANDIDATES: dict[str, tuple[str, str]] = {
    "context-online": (
        "bench.nab.compare:context_always_growing",
        "ContextDetector, range growing with every reading (calibration=0)",
    ),
    "context-h50": (
        "bench.nab.compare:context_headroom_50",
        "ContextDetector, growing range with 50% headroom",
    ),
    "context-cal750-m50": (
        "bench.nab.compare:context_calibrated_750_margin_50",
        "ContextDetector, range of the first 750 readings widened by 50% each side",
    ),
    "context-cal750-m100": (
        "bench.nab.compare:context_calibrated_750_margin_100",
        "ContextDetector, range of the first 750 readings widened by 100% each side",
    ),
    "context-cal750-relearn": (
        "bench.nab.compare:context_calibrated_750_relearn",
        "ContextDetector, range of the first 750 readings, then memory reset and relearnt",
    ),
    "context-cal300-relearn": (
        "bench.nab.compare:context_calibrated_300_relearn",
        "ContextDetector, range of the first 300 readings, then memory reset and relearnt",
    ),
    "context-cal750-overflow": (
        "bench.nab.compare:context_calibrated_750_overflow",
        "ContextDetector, range of the first 750 readings; a reading outside it also gets a "
        "fact for how far out it is",
    ),
    "context-cal750-m50-b4": (
        "bench.nab.compare:context_calibrated_750_margin_50_bits_4",
        "ContextDetector, range of the first 750 readings widened by 50% each side, 16 levels "
        "(the calibrated range keeps its 8 levels' resolution, with room above and below)",
    ),
    "context-cal750-extremes": (
        "bench.nab.compare:context_calibrated_750_extremes",
        "ContextDetector, range of the first 750 readings; after them, a reading beyond every "
        "one seen so far is an alarm by itself",
    ),
    "context-rest300": (
        "bench.nab.compare:context_rest_300",
        "ContextDetector (records on), 300 readings of rest after an alarm instead of 150",
    ),
    # 2026-12-03: ARTime, in the order tried (first as a prototype outside the repository,
    # the same algorithm: it gave the same scores, file by file, as shared.ml.artime).
    "artime-p750-plain": (
        "bench.nab.compare:artime_p750_plain",
        "ARTimeDetector, 750 readings of probation (ARTime's for long files), no records",
    ),
    "artime-p750": (
        "bench.nab.compare:artime_p750",
        "ARTimeDetector, 750 readings of probation, records (150 readings of rest)",
    ),
    "artime-range-p750": (
        "bench.nab.compare:artime_range_p750",
        "ARTimeDetector given each file's min/max, 750 readings of probation: looks ahead "
        "(diagnostic, not a candidate)",
    ),
    "artime-length": (
        "bench.nab.compare:artime_length",
        "ARTimeDetector, probation from the file's length as NAB's, range learnt over it: looks "
        "ahead (diagnostic, not a candidate)",
    ),
    "artime-length-records": (
        "bench.nab.compare:artime_length_records",
        "ARTimeDetector, probation from the file's length as NAB's, range learnt over it, "
        "records: looks ahead (diagnostic, not a candidate)",
    ),
    **{
        f"artime-p{p}": (
            f"bench.nab.compare:artime_p{p}",
            f"ARTimeDetector, {p} readings of probation, records (150 readings of rest)",
        )
        for p in (200, 300, 400, 500, 600, 250, 350)
    },
    "artime-p300-rest75": (
        "bench.nab.compare:artime_p300_rest75",
        "ARTimeDetector, 300 readings of probation, records with 75 readings of rest",
    ),
    "artime-p300-rest300": (
        "bench.nab.compare:artime_p300_rest300",
        "ARTimeDetector, 300 readings of probation, records with 300 readings of rest",
    ),
    "artime-p750-rest300": (
        "bench.nab.compare:artime_p750_rest300",
        "ARTimeDetector, 750 readings of probation, records with 300 readings of rest",
    ),
    "artime-context-p300": (
        "bench.nab.compare:artime_context_p300",
        "The higher of ARTimeDetector (as chosen) and ContextDetector's scores",
    ),
    "artime-context-p750": (
        "bench.nab.compare:artime_context_p750",
        "The higher of ARTimeDetector (750 readings of probation, records) and "
        "ContextDetector's scores",
    ),
}
ALL = {**DETECTORS, **CANDIDATES}
# What each row's figures are, given how its parameters were chosen.
LABELS = {
    "context": "calibration and records chosen on A: A in-sample, B out-of-sample, whole mixed",
    "hst": "River's defaults, fixed before looking: out-of-sample everywhere",
    "residual": "parameters chosen on the whole corpus earlier: in-sample everywhere",
    "cad-oracle": "NAB's protocol (file range known in advance), CAD OSE's parameters: no tuning",
    "artime": "probation and rest chosen on A: A in-sample, B out-of-sample, whole mixed",
    "artime-oracle": "NAB's protocol (file range and length known in advance), ARTime's "
    "parameters: no tuning",
}
# The benchmark machine has 2 cores shared with others: one worker process besides this one.
DEFAULT_WORKERS = 1


def half_space_trees() -> Detector:
    """River's HalfSpaceTrees behind an online min-max scaler, on the reading's value only."""
    from river import anomaly, compose, preprocessing

    model = compose.Select("value") | preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)
    return model


def context_always_growing() -> Detector:
    from shared.ml.context import ContextDetector

    return ContextDetector(calibration=0, extremes=False)


def context_headroom_50() -> Detector:
    from shared.ml.context import ContextDetector

    return ContextDetector(calibration=0, headroom=0.5, extremes=False)


def context_calibrated_750_margin_50() -> Detector:
    from shared.ml.context import ContextDetector

    return ContextDetector(calibration=750, margin=0.5, extremes=False)


def context_calibrated_750_margin_100() -> Detector:
    from shared.ml.context import ContextDetector

    return ContextDetector(calibration=750, margin=1.0, extremes=False)


def context_calibrated_750_relearn() -> Detector:
    from shared.ml.context import ContextDetector

    return ContextDetector(calibration=750, relearn=True, extremes=False)


def context_calibrated_300_relearn() -> Detector:
    from shared.ml.context import ContextDetector

    return ContextDetector(calibration=300, relearn=True, extremes=False)


def context_calibrated_750_overflow() -> Detector:
    from shared.ml.context import ContextDetector

    return ContextDetector(calibration=750, overflow=True, extremes=False)


def context_calibrated_750_margin_50_bits_4() -> Detector:
    from shared.ml.context import ContextDetector

    return ContextDetector(calibration=750, margin=0.5, bits=4, extremes=False)


def context_calibrated_750_extremes() -> Detector:
    from shared.ml.context import ContextDetector

    return ContextDetector(calibration=750, extremes=True)


def context_rest_300() -> Detector:
    from shared.ml.context import ContextDetector

    return ContextDetector(rest=300)


def context_with_file_range(values: Sequence[float]) -> Detector:
    """CAD OSE's NAB setting: the file's range and rest period known before the first reading."""
    from shared.ml.context import ContextDetector
    from shared.ml.nab_scoring import probationary_length

    rest = int(probationary_length(len(values)) / 5)
    return ContextDetector(lo=min(values), hi=max(values), rest=rest, extremes=False)


def _artime(**params: Any) -> Detector:
    from shared.ml.artime import ARTimeDetector

    return ARTimeDetector(**params)


def _nab_probation(values: Sequence[float]) -> int:
    """ARTime's probation in NAB: 15% of the file, at most 750 readings."""
    return int(0.15 * len(values)) if len(values) < 5000 else 750


def artime_with_file_range(values: Sequence[float]) -> Detector:
    """ARTime's NAB setting: the file's range and length known before the first reading."""
    return _artime(probation=_nab_probation(values), lo=min(values), hi=max(values), records=False)


# Candidates with fixed parameters (the tuning log's; `load_factory` finds them by name).
artime_p750_plain = partial(_artime, probation=750, records=False)
artime_p750 = partial(_artime, probation=750, record_rest=150)
artime_p200 = partial(_artime, probation=200, record_rest=150)
artime_p250 = partial(_artime, probation=250, record_rest=150)
artime_p300 = partial(_artime, probation=300, record_rest=150)
artime_p350 = partial(_artime, probation=350, record_rest=150)
artime_p400 = partial(_artime, probation=400, record_rest=150)
artime_p500 = partial(_artime, probation=500, record_rest=150)
artime_p600 = partial(_artime, probation=600, record_rest=150)
artime_p300_rest75 = partial(_artime, probation=300, record_rest=75)
artime_p300_rest300 = partial(_artime, probation=300, record_rest=300)
artime_p750_rest300 = partial(_artime, probation=750, record_rest=300)


def artime_range_p750(values: Sequence[float]) -> Detector:
    return _artime(probation=750, lo=min(values), hi=max(values), records=False)


def artime_length(values: Sequence[float]) -> Detector:
    return _artime(probation=_nab_probation(values), records=False)


def artime_length_records(values: Sequence[float]) -> Detector:
    return _artime(probation=_nab_probation(values), record_rest=150)


class _Highest:
    """Several detectors on one stream; the score is the highest of theirs."""

    def __init__(self, *detectors: Detector) -> None:
        self.detectors = detectors

    def score_one(self, x: dict[str, Any]) -> float:
        return max(float(d.score_one(x)) for d in self.detectors)

    def learn_one(self, x: dict[str, Any]) -> None:
        for d in self.detectors:
            d.learn_one(x)


def artime_context_p300() -> Detector:
    from shared.ml.context import ContextDetector

    return _Highest(_artime(), ContextDetector())


def artime_context_p750() -> Detector:
    from shared.ml.context import ContextDetector

    return _Highest(_artime(probation=750, record_rest=150), ContextDetector())


def split_halves(corpus: Corpus) -> dict[str, list[str]]:
    """Half A: even positions of each category's files sorted by name; half B: odd ones."""
    by_category: dict[str, list[str]] = {}
    for name in corpus.names:
        by_category.setdefault(name.split("/", 1)[0], []).append(name)
    halves: dict[str, list[str]] = {"A": [], "B": []}
    for names in by_category.values():
        for i, name in enumerate(sorted(names)):
            halves["A" if i % 2 == 0 else "B"].append(name)
    return halves


def _detect(root: Path, name: str, spec: str) -> tuple[str, str, list[float], float]:
    series = load_corpus(root).series(name)
    factory: Callable[..., Detector] = load_factory(spec)
    values = [float(v) for v in series.values]
    det = factory(values=values) if "values" in inspect.signature(factory).parameters else factory()
    xs = [
        {"ts": parse_timestamp(t).replace(tzinfo=UTC), "value": float(v)}
        for t, v in zip(series.timestamps, series.values, strict=True)
    ]
    scores = []
    started = time.perf_counter()
    for x in xs:
        scores.append(float(det.score_one(x)))
        det.learn_one(x)
    return spec, name, scores, time.perf_counter() - started


def _profiles(results: Mapping[str, ProfileResult]) -> dict[str, Any]:
    return {
        key: {"score": round(results[key].score, 2), "threshold": results[key].threshold}
        for key in PROFILE_KEYS
    }


def score_halves(
    *, corpus: Corpus, labels: Mapping[str, FileLabels], scores: Mapping[str, Sequence[float]]
) -> dict[str, Any]:
    """Whole corpus, half A, and half B at A's thresholds (see the module's protocol)."""
    halves = split_halves(corpus)
    out: dict[str, Any] = {}
    if set(labels) <= set(scores):
        whole = score_corpus(labels=labels, scores=scores, profiles=corpus.profiles)
        out["whole"] = _profiles(whole)
        out["per_file_standard"] = {
            n: round(t.score, 4) for n, t in sorted(whole["standard"].per_file.items())
        }
    part = {h: {n: labels[n] for n in names} for h, names in halves.items()}
    if set(part["A"]) <= set(scores):
        a = score_corpus(labels=part["A"], scores=scores, profiles=corpus.profiles)
        out["A"] = _profiles(a)
        if set(part["B"]) <= set(scores):
            b = score_corpus(
                labels=part["B"],
                scores=scores,
                profiles=corpus.profiles,
                thresholds={k: r.threshold for k, r in a.items()},
            )
            out["B_at_A_threshold"] = _profiles(b)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nab.compare", description=__doc__)
    parser.add_argument("--data-dir", help="shared data folder (default ../shared/data)")
    parser.add_argument("--only", action="append", choices=sorted(ALL))
    parser.add_argument("--half", choices=["A", "B"], help="run one half only")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--output", default="nab_compare", help="result file name")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)

    root = data_dir(args.data_dir) / "nab"
    corpus = load_corpus(root)
    names = split_halves(corpus)[args.half] if args.half else corpus.names
    chosen = args.only or list(DETECTORS)
    series = {n: corpus.series(n) for n in corpus.names}
    labels = {n: corpus.labels(s) for n, s in series.items()}
    scores: dict[str, dict[str, list[float]]] = {d: {} for d in chosen}
    seconds: dict[str, float] = dict.fromkeys(chosen, 0.0)
    spec_to_name = {ALL[d][0]: d for d in chosen}
    # Biggest files first, so the last task to finish is a short one.
    tasks = sorted(
        ((ALL[d][0], n) for d in chosen for n in names),
        key=lambda t: -len(series[t[1]].values),
    )
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futures = [pool.submit(_detect, root, n, spec) for spec, n in tasks]
        for done, fut in enumerate(as_completed(futures), 1):
            spec, name, s, sec = fut.result()
            det = spec_to_name[spec]
            scores[det][name], seconds[det] = s, seconds[det] + sec
            print(f"[{done}/{len(tasks)}] {det} {name} {sec:.1f}s", flush=True)

    rows = sum(len(series[n].values) for n in names)
    summary: dict[str, Any] = {}
    for det in chosen:
        summary[det] = {
            "factory": ALL[det][0],
            "what": ALL[det][1],
            "label": LABELS.get(det, "candidate tried on A: in-sample"),
            "files": len(names),
            "rows": rows,
            "us_per_reading": round(seconds[det] / rows * 1e6, 1),
            **score_halves(corpus=corpus, labels=labels, scores=scores[det]),
        }
        print(det, {k: v for k, v in summary[det].items() if k != "per_file_standard"})
    payload = {
        "meta": run_meta(command=command_line("bench.nab.compare", argv), data=root),
        "benchmark": "nab_compare",
        "halves": split_halves(corpus),
        "detectors": summary,
    }
    path = write_result(args.output, payload, results_dir=args.results_dir)
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
