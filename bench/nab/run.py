"""Run the project's anomaly detector over the NAB corpus and score it like NAB does.

    python -m bench.nab.run                 # detect (2 processes), write results, score
    python -m bench.nab.run --score-only    # re-score the CSVs already in bench/results/nab/

Every series is streamed one reading at a time through a fresh detector from
``shared.ml.anomaly.make_detector`` -- the code the domain services run, untuned for NAB:
``score = det.score_one(x)`` (before learning), then ``det.learn_one(x)``.

Outputs, in NAB's results layout so NAB's own scorer can re-score them:

- ``bench/results/nab/<detector>/<category>/<detector>_<name>.csv`` with
  ``timestamp,value,anomaly_score,label`` (NAB's detectors also write the ``label`` column);
- ``bench/results/nab/<detector>/<detector>_<profile>_scores.csv`` (NAB's per-profile tables);
- ``bench/results/nab.json``: normalised scores per profile and the threshold each one chose.

NAB timestamps carry no time zone; they are given to the detector as UTC.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import math
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC
from pathlib import Path
from typing import Any, Protocol

from rich.progress import Progress

from bench.common import RESULTS, command_line, data_dir, run_meta, write_result
from bench.nab.corpus import Corpus, Series, load_corpus, parse_timestamp
from shared.ml.nab_scoring import ProfileResult, score_corpus

DEFAULT_DETECTOR = "shared.ml.anomaly:make_detector"
# NAB splits result file names on "_" to find the detector: the name must not contain one.
DEFAULT_NAME = "townpulse"
PROFILE_KEYS = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
# The benchmark machine has 2 cores; one process per core, one series at a time each.
DEFAULT_WORKERS = 2


class Detector(Protocol):
    def score_one(self, x: dict[str, Any]) -> float: ...
    def learn_one(self, x: dict[str, Any]) -> None: ...


def load_factory(spec: str) -> Callable[[], Detector]:
    """``"package.module:function"`` -> the function (a string: worker processes import it)."""
    module, _, attr = spec.partition(":")
    factory: Callable[[], Detector] = getattr(importlib.import_module(module), attr or "make")
    return factory


def detect(series: Series, factory: Callable[[], Detector]) -> list[float]:
    """Stream one series through a fresh detector; the score of each row, taken before learning."""
    det = factory()
    scores: list[float] = []
    for ts, value in zip(series.timestamps, series.values, strict=True):
        x = {"ts": parse_timestamp(ts).replace(tzinfo=UTC), "value": float(value)}
        s = float(det.score_one(x))
        if not 0.0 <= s <= 1.0 or math.isnan(s):
            raise ValueError(f"{series.name} at {ts}: anomaly score {s} outside [0, 1]")
        det.learn_one(x)
        scores.append(s)
    return scores


def _detect_file(root: Path, name: str, factory_spec: str) -> tuple[str, list[float], float]:
    started = time.perf_counter()
    corpus_series = load_corpus(root).series(name)
    scores = detect(corpus_series, load_factory(factory_spec))
    return name, scores, time.perf_counter() - started


def result_path(out_dir: Path, detector: str, name: str) -> Path:
    """NAB's naming: ``<detector>/<category>/<detector>_<file>.csv``."""
    category, file_name = name.split("/", 1)
    return out_dir / detector / category / f"{detector}_{file_name}"


def write_series_result(
    *, out_dir: Path, detector: str, series: Series, scores: Sequence[float], labels: Sequence[int]
) -> Path:
    path = result_path(out_dir, detector, series.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["timestamp", "value", "anomaly_score", "label"])
        for row in zip(series.timestamps, series.values, scores, labels, strict=True):
            # repr() round-trips the float exactly: a re-score sees the very same numbers.
            w.writerow([row[0], row[1], repr(float(row[2])), row[3]])
    return path


def read_series_scores(out_dir: Path, detector: str, name: str) -> list[float]:
    with result_path(out_dir, detector, name).open(newline="") as fh:
        return [float(r["anomaly_score"]) for r in csv.DictReader(fh)]


def row_labels(corpus: Corpus, series: Series) -> list[int]:
    """NAB's ``label`` column: 1 inside an anomaly window."""
    labels = [0] * len(series.timestamps)
    for first, last in corpus.labels(series).windows:
        for i in range(first, last + 1):
            labels[i] = 1
    return labels


def write_profile_table(out_dir: Path, detector: str, result: ProfileResult) -> Path:
    """NAB's ``<detector>_<profile>_scores.csv``: one row per file and a Totals row."""
    path = out_dir / detector / f"{detector}_{result.profile}_scores.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    totals = [0.0, 0, 0, 0, 0, 0]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(
            [
                "Detector",
                "Profile",
                "File",
                "Threshold",
                "Score",
                "TP",
                "TN",
                "FP",
                "FN",
                "Total_Count",
            ]
        )
        for name, t in sorted(result.per_file.items()):
            counts = [t.score, t.tp, t.tn, t.fp, t.fn, t.total]
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
            w.writerow([detector, result.profile, name, t.threshold, *counts])
        w.writerow(["Totals", "", "", "", *totals])
    return path


def run_detector(
    *,
    corpus: Corpus,
    factory_spec: str,
    workers: int,
    progress: bool = True,
    names: Sequence[str] | None = None,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Anomaly scores of every series (in parallel over series) and seconds spent on each."""
    todo = list(names or corpus.names)
    scores: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    # Longest files first, so the last process to finish isn't left with the biggest one.
    todo.sort(key=lambda n: (corpus.root / "data" / n).stat().st_size, reverse=True)
    with Progress(disable=not progress) as bar:
        task = bar.add_task("NAB series", total=len(todo))
        if workers <= 1:
            for name in todo:
                _, scores[name], seconds[name] = _detect_file(corpus.root, name, factory_spec)
                bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [
                    pool.submit(_detect_file, corpus.root, name, factory_spec) for name in todo
                ]
                for fut in as_completed(futures):
                    name, scores[name], seconds[name] = fut.result()
                    bar.advance(task)
    return scores, seconds


def run(
    *,
    nab_root: Path,
    out_dir: Path = RESULTS / "nab",
    detector: str = DEFAULT_NAME,
    factory_spec: str = DEFAULT_DETECTOR,
    workers: int = DEFAULT_WORKERS,
    score_only: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Detect (unless ``score_only``), write NAB's layout, score; return the summary."""
    if "_" in detector:
        raise ValueError("NAB detector names cannot contain '_'")
    corpus = load_corpus(nab_root)
    series = {name: corpus.series(name) for name in corpus.names}
    labels = {name: corpus.labels(s) for name, s in series.items()}
    started = time.perf_counter()
    if score_only:
        scores = {name: read_series_scores(out_dir, detector, name) for name in series}
        seconds: dict[str, float] = {}
    else:
        scores, seconds = run_detector(
            corpus=corpus, factory_spec=factory_spec, workers=workers, progress=progress
        )
        for name, s in series.items():
            write_series_result(
                out_dir=out_dir,
                detector=detector,
                series=s,
                scores=scores[name],
                labels=row_labels(corpus, s),
            )
    detect_seconds = time.perf_counter() - started
    results = score_corpus(labels=labels, scores=scores, profiles=corpus.profiles)
    for r in results.values():
        write_profile_table(out_dir, detector, r)
    return summarise(
        results=results,
        detector=detector,
        factory_spec=factory_spec,
        workers=workers,
        seconds=seconds,
        detect_seconds=None if score_only else detect_seconds,
        n_rows=sum(lab.n_rows for lab in labels.values()),
    )


def summarise(
    *,
    results: dict[str, ProfileResult],
    detector: str,
    factory_spec: str,
    workers: int,
    seconds: dict[str, float],
    detect_seconds: float | None,
    n_rows: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "benchmark": "nab",
        "detector": detector,
        "detector_factory": factory_spec,
        "files": len(next(iter(results.values())).per_file),
        "rows": n_rows,
        "workers": workers,
        "detect_seconds": None if detect_seconds is None else round(detect_seconds, 1),
        "results_dir": f"bench/results/nab/{detector}",
    }
    for key in PROFILE_KEYS:
        r = results[key]
        out[key] = round(r.score, 2)
    out["threshold"] = {key: results[key].threshold for key in PROFILE_KEYS}
    out["profiles"] = {
        key: {
            "score": r.score,
            "threshold": r.threshold,
            "raw": r.raw,
            "null": r.null,
            "perfect": r.perfect,
        }
        for key, r in results.items()
    }
    std = results["standard"].per_file
    out["per_file_standard"] = {
        name: {
            "raw": round(t.score, 4),
            "tp_rows": t.tp,
            "fp_rows": t.fp,
            "seconds": round(seconds[name], 2) if name in seconds else None,
        }
        for name, t in sorted(std.items())
    }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nab.run", description=__doc__)
    parser.add_argument("--data-dir", help="shared data folder (default ../shared/data)")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help="module:factory")
    parser.add_argument("--name", default=DEFAULT_NAME, help="detector name in NAB's layout")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--score-only", action="store_true", help="re-score existing CSVs")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--no-progress", action="store_true")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)

    root = data_dir(args.data_dir) / "nab"
    summary = run(
        nab_root=root,
        out_dir=args.results_dir / "nab",
        detector=args.name,
        factory_spec=args.detector,
        workers=args.workers,
        score_only=args.score_only,
        progress=not args.no_progress,
    )
    command = command_line("bench.nab.run", argv)
    payload = {"meta": run_meta(command=command, data=root), **summary}
    # Other detectors (for comparison) get their own file; nab.json is always ours.
    result_name = "nab" if args.name == DEFAULT_NAME else f"nab_{args.name}"
    path = write_result(result_name, payload, results_dir=args.results_dir)
    print(
        f"NAB ({args.name}): standard {summary['standard']:.1f}, "
        f"reward_low_FP_rate {summary['reward_low_FP_rate']:.1f}, "
        f"reward_low_FN_rate {summary['reward_low_FN_rate']:.1f} -> {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
