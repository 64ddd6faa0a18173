"""Unit tests for `bench.nab.run` on a tiny NAB-shaped corpus, with a stand-in detector."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.nab.corpus import load_corpus
from bench.nab.run import detect, load_factory, result_path, run

pytestmark = pytest.mark.unit

PROFILES = {
    "standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11}},
    "reward_low_FP_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22}},
    "reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11}},
}


class ZScore:
    """Stand-in detector: how far the value is from the running mean, squashed into [0, 1]."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def score_one(self, x: dict[str, Any]) -> float:
        if self.n < 10:
            return 0.0
        std = math.sqrt(self.m2 / self.n) or 1.0
        return 1.0 - math.exp(-abs(x["value"] - self.mean) / std / 3)

    def learn_one(self, x: dict[str, Any]) -> None:
        self.n += 1
        delta = x["value"] - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x["value"] - self.mean)


def make_stand_in() -> ZScore:
    return ZScore()


STAND_IN = f"{__name__}:make_stand_in"


def _write_series(path: Path, values: list[float]) -> list[str]:
    t0 = datetime(2015, 3, 1, tzinfo=UTC)  # written without a zone, as NAB's files are
    stamps = [
        (t0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(len(values))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fh.write("timestamp,value\n")
        for ts, v in zip(stamps, values, strict=True):
            fh.write(f"{ts},{v}\n")
    return stamps


@pytest.fixture
def nab_root(tmp_path: Path) -> Path:
    """Two series: one with a jump inside its only window, one without windows."""
    root = tmp_path / "nab"
    jumpy = [10.0 + (i % 5) for i in range(300)]
    for i in range(200, 210):
        jumpy[i] = 80.0
    stamps = _write_series(root / "data/artificialWithAnomaly/jumpy.csv", jumpy)
    _write_series(root / "data/artificialNoAnomaly/calm.csv", [10.0 + (i % 5) for i in range(200)])
    windows = {
        "artificialWithAnomaly/jumpy.csv": [[stamps[195] + ".000000", stamps[225] + ".000000"]],
        "artificialNoAnomaly/calm.csv": [],
    }
    (root / "labels").mkdir()
    (root / "labels/combined_windows.json").write_text(json.dumps(windows))
    (root / "config").mkdir()
    (root / "config/profiles.json").write_text(json.dumps(PROFILES))
    return root


def test_detect_scores_before_learning(nab_root: Path) -> None:
    corpus = load_corpus(nab_root)
    scores = detect(corpus.series("artificialWithAnomaly/jumpy.csv"), make_stand_in)
    assert len(scores) == 300
    assert scores[:10] == [0.0] * 10
    assert scores[200] > 0.9 > max(scores[20:200])


def test_detect_refuses_scores_outside_0_1(nab_root: Path) -> None:
    class Loud(ZScore):
        def score_one(self, x: dict[str, Any]) -> float:
            return 2.0

    with pytest.raises(ValueError, match="outside"):
        detect(load_corpus(nab_root).series("artificialNoAnomaly/calm.csv"), Loud)


@pytest.mark.parametrize("workers", [1, 2])
def test_run_writes_nab_layout_and_scores(nab_root: Path, tmp_path: Path, workers: int) -> None:
    out = tmp_path / "results" / "nab"
    summary = run(
        nab_root=nab_root, out_dir=out, factory_spec=STAND_IN, workers=workers, progress=False
    )
    path = result_path(out, "townpulse", "artificialWithAnomaly/jumpy.csv")
    assert path == out / "townpulse/artificialWithAnomaly/townpulse_jumpy.csv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
    assert rows[0]["timestamp"] == "2015-03-01 00:00:00"
    assert sum(int(r["label"]) for r in rows) == 31
    assert (out / "townpulse/artificialNoAnomaly/townpulse_calm.csv").is_file()
    assert (out / "townpulse/townpulse_standard_scores.csv").is_file()
    # the jump is caught early in its window (rows 195..225): a high score
    assert summary["standard"] > 70
    assert set(summary["threshold"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert summary["files"] == 2

    rescored = run(nab_root=nab_root, out_dir=out, score_only=True, progress=False)
    for key in ("standard", "reward_low_FP_rate", "reward_low_FN_rate", "threshold"):
        assert rescored[key] == summary[key]


def test_detector_names_cannot_contain_underscores(nab_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'_'"):
        run(nab_root=nab_root, out_dir=tmp_path, detector="town_pulse", progress=False)


def test_load_factory() -> None:
    assert load_factory(STAND_IN) is make_stand_in
