"""Unit tests for `shared.ml.nab_scoring`: NAB's scoring on cases small enough to work out by hand.

The scaled sigmoid is ``2 / (1 + exp(5 p)) - 1``, i.e. ``tanh(-5 p / 2)``; a true positive is
divided by its value at the window start, ``tanh(2.5) = 0.98661 42981 51430``.

Most cases use one file of 100 rows: probationary period floor(0.15 * 100) = 15 rows, one window
on rows 40..49 (width 10), and the standard profile (A_TP = 1, A_FP = 0.11, A_FN = 1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from shared.ml.nab_scoring import (
    NO_WINDOW,
    PROBATIONARY,
    CostMatrix,
    FileLabels,
    best_threshold,
    load_profiles,
    normalise,
    probationary_length,
    row_weights,
    scaled_sigmoid,
    score_corpus,
    score_file,
    sweep,
    window_rows,
)

pytestmark = pytest.mark.unit

STANDARD = CostMatrix(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
LOW_FP = CostMatrix(tp_weight=1.0, fp_weight=0.22, fn_weight=1.0)
LOW_FN = CostMatrix(tp_weight=1.0, fp_weight=0.11, fn_weight=2.0)
FILE = FileLabels(name="cat/f.csv", n_rows=100, windows=((40, 49),))


def raw(detections: list[int], costs: CostMatrix = STANDARD, labels: FileLabels = FILE) -> float:
    """Raw score of a file where exactly the rows in `detections` score 1 (threshold 1)."""
    scores = [0.0] * labels.n_rows
    for i in detections:
        scores[i] = 1.0
    return score_file(labels.scored(scores, costs), 1.0).score


def test_scaled_sigmoid_landmarks() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.9866142981514303)
    assert scaled_sigmoid(-0.5) == pytest.approx(math.tanh(1.25))  # 0.84828 in NAB's docstring
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.9866142981514303)
    assert scaled_sigmoid(3.0) == pytest.approx(-0.9999993881955461)  # 3.0 is not "far" yet
    assert scaled_sigmoid(3.0001) == -1.0


def test_probationary_length_is_15_percent_capped_at_750_rows() -> None:
    assert probationary_length(100) == 15
    assert probationary_length(4032) == 604  # floor(604.8)
    assert probationary_length(5000) == 750
    assert probationary_length(22695) == 750


def test_detection_at_window_start_is_worth_exactly_a_tp() -> None:
    assert raw([40]) == pytest.approx(1.0)


def test_detection_at_window_end_is_worth_little() -> None:
    # position -(49 - 49 + 1) / 10 = -0.1: tanh(0.25) / tanh(2.5)
    assert raw([49]) == pytest.approx(0.24824154977542992)


def test_only_the_first_detection_in_a_window_counts() -> None:
    # row 44: position -(49 - 44 + 1) / 10 = -0.6: tanh(1.5) / tanh(2.5); row 48 adds nothing
    assert raw([44, 48]) == pytest.approx(0.9174286804284078)
    assert raw([44, 48]) == pytest.approx(raw([44]))


def test_missed_window_costs_a_fn() -> None:
    assert raw([]) == -1.0
    assert raw([], LOW_FN) == -2.0


def test_false_positive_before_any_window_costs_a_fp() -> None:
    assert raw([20, 40]) == pytest.approx(1.0 - 0.11)
    assert raw([20]) == pytest.approx(-1.0 - 0.11)
    assert raw([20, 40], LOW_FP) == pytest.approx(1.0 - 0.22)


def test_false_positive_just_after_a_window_costs_less() -> None:
    # row 50: distance 1 / (width - 1) = 1/9 -> tanh(-5/18) * 0.11
    assert raw([40, 50]) == pytest.approx(1.0 - 0.029793183036839352)


def test_false_positive_one_width_after_a_window() -> None:
    # row 58: 9/9 = 1.0 -> tanh(-2.5) * 0.11
    assert raw([40, 58]) == pytest.approx(1.0 - 0.10852757279665734)


def test_false_positive_far_after_a_window_costs_a_full_fp() -> None:
    # row 76: 27/9 = 3.0 exactly, still on the sigmoid; row 77: 28/9 > 3 -> -1
    assert raw([40, 76]) == pytest.approx(1.0 - 0.10999993270151008)
    assert raw([40, 77]) == pytest.approx(1.0 - 0.11)


def test_every_false_positive_counts() -> None:
    assert raw([20, 21, 22, 40]) == pytest.approx(1.0 - 3 * 0.11)


def test_detections_in_the_probationary_period_are_ignored() -> None:
    assert raw([0, 5, 14]) == -1.0  # only the missed window
    assert raw([15]) == pytest.approx(-1.0 - 0.11)  # row 15 is the first scored row


def test_window_reaching_into_the_probationary_period_still_counts() -> None:
    labels = FileLabels(name="cat/g.csv", n_rows=100, windows=((10, 19),))
    # rows 10-14 are not scored; a detection at 16 has position -(19 - 16 + 1) / 10 = -0.4
    assert raw([12], labels=labels) == -1.0
    assert raw([16], labels=labels) == pytest.approx(0.7719269398210887)


def test_row_weights_mark_windows_and_probation() -> None:
    weights, window_of = row_weights(n_rows=100, windows=((40, 49),), costs=STANDARD)
    assert window_of[:15] == [PROBATIONARY] * 15
    assert window_of[15] == NO_WINDOW
    assert window_of[40:50] == [0] * 10
    assert window_of[50] == NO_WINDOW
    assert weights[40] == pytest.approx(1.0)
    assert weights[20] == pytest.approx(-0.11)


def test_threshold_sweep_by_hand() -> None:
    scores = [0.0] * 100
    scores[20] = 0.9  # false positive, -0.11
    scores[45] = 0.8  # in the window: position -0.5, tanh(1.25) / tanh(2.5) = 0.859793...
    scores[41] = 0.7  # earlier in the window: position -0.9, tanh(2.25) / tanh(2.5)
    f = FILE.scored(scores, STANDARD)
    rows = sweep([f])
    assert [r.threshold for r in rows] == [1.1, 0.9, 0.8, 0.7, 0.0]
    tp45 = math.tanh(1.25) / math.tanh(2.5)
    tp41 = math.tanh(2.25) / math.tanh(2.5)
    expected = [-1.0, -1.11, tp45 - 0.11, tp41 - 0.11]
    assert [r.score for r in rows[:4]] == pytest.approx(expected)
    # threshold 0: every scored row detected, 74 more false positives (rows 15..99 off-window)
    assert rows[4].fp == 75
    assert rows[3].tp == 2 and rows[3].fp == 1 and rows[3].fn == 8
    assert best_threshold(rows).threshold == 0.7
    for r in rows:
        assert score_file(f, r.threshold).score == pytest.approx(r.score)


def test_ties_prefer_the_higher_threshold() -> None:
    scores = [0.0] * 100
    scores[40] = 0.9
    scores[41] = 0.5  # adds nothing: the window is already caught
    rows = sweep([FILE.scored(scores, STANDARD)])
    assert best_threshold(rows).threshold == 0.9


def test_threshold_between_a_files_scores() -> None:
    scores = [0.0] * 100
    scores[40] = 0.9
    f = FILE.scored(scores, STANDARD)
    assert score_file(f, 0.5).score == pytest.approx(1.0)  # 0.5 is not a score of this file
    assert score_file(f, 1.1).score == -1.0


def test_corpus_sweep_equals_the_sum_of_file_scores() -> None:
    other = FileLabels(name="cat/h.csv", n_rows=200, windows=((50, 59), (150, 179)))
    a = [0.0] * 100
    a[42], a[70] = 0.6, 0.8
    b = [0.0] * 200
    b[55], b[100], b[160] = 0.7, 0.65, 0.9
    files = [FILE.scored(a, STANDARD), other.scored(b, STANDARD)]
    for row in sweep(files):
        total = sum(score_file(f, row.threshold).score for f in files)
        assert total == pytest.approx(row.score)


def test_normalise() -> None:
    assert normalise(-116.0, null=-116.0, perfect=116.0) == 0.0
    assert normalise(116.0, null=-116.0, perfect=116.0) == 100.0
    assert normalise(0.0, null=-116.0, perfect=116.0) == 50.0


def _corpus() -> dict[str, FileLabels]:
    return {
        "cat/f.csv": FILE,
        "cat/h.csv": FileLabels(name="cat/h.csv", n_rows=200, windows=((50, 59), (150, 179))),
        "cat/none.csv": FileLabels(name="cat/none.csv", n_rows=50, windows=()),
    }


PROFILES = {"standard": STANDARD, "reward_low_FP_rate": LOW_FP, "reward_low_FN_rate": LOW_FN}


def test_null_detector_scores_0_and_perfect_detector_scores_100() -> None:
    labels = _corpus()
    null = score_corpus(
        labels=labels,
        scores={n: [0.5] * lab.n_rows for n, lab in labels.items()},
        profiles=PROFILES,
    )
    perfect_scores = {}
    for n, lab in labels.items():
        s = [0.0] * lab.n_rows
        for first, _ in lab.windows:
            s[first] = 1.0
        perfect_scores[n] = s
    perfect = score_corpus(labels=labels, scores=perfect_scores, profiles=PROFILES)
    for profile in PROFILES:
        assert null[profile].score == pytest.approx(0.0)
        assert perfect[profile].score == pytest.approx(100.0)
        assert perfect[profile].threshold == 1.0
    assert null["standard"].null == -3.0
    assert null["reward_low_FN_rate"].null == -6.0
    assert perfect["standard"].perfect == 3.0


def test_each_profile_optimises_its_own_threshold() -> None:
    labels = {"cat/f.csv": FILE}
    s = [0.0] * 100
    s[20] = 0.9
    s[21] = 0.9
    s[22] = 0.9
    s[49] = 0.9  # late catch: +0.248; with three false positives
    s[30] = 0.8
    s[45] = 0.8
    out = score_corpus(labels=labels, scores={"cat/f.csv": s}, profiles=PROFILES)
    # standard: threshold 0.8 -> 4 FP (-0.44) + tp45 (0.8598) = 0.4198 beats 0.9 (0.248-0.33)
    assert out["standard"].threshold == 0.8
    # low FP: 0.8 -> -0.88 + 0.8598 = -0.02 ; nothing -> -1 ; 0.9 -> 0.248 - 0.66 = -0.41
    assert out["reward_low_FP_rate"].threshold == 0.8
    assert out["standard"].raw == pytest.approx(math.tanh(1.25) / math.tanh(2.5) - 0.44)


def test_scores_must_cover_the_corpus() -> None:
    with pytest.raises(ValueError, match="no anomaly scores"):
        score_corpus(labels=_corpus(), scores={}, profiles=PROFILES)


def test_window_rows_from_timestamps() -> None:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2015, 1, 1, tzinfo=UTC)
    stamps = [t0 + timedelta(minutes=5 * i) for i in range(10)]
    assert window_rows(stamps, [(stamps[6], stamps[8]), (stamps[1], stamps[2])]) == (
        (1, 2),
        (6, 8),
    )
    with pytest.raises(ValueError, match="window limit"):
        window_rows(stamps, [(t0 - timedelta(days=1), stamps[2])])


def test_load_profiles(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(
        json.dumps(
            {
                "standard": {
                    "CostMatrix": {
                        "tpWeight": 1.0,
                        "fnWeight": 1.0,
                        "fpWeight": 0.11,
                        "tnWeight": 1.0,
                    }
                }
            }
        )
    )
    assert load_profiles(path) == {"standard": STANDARD}
