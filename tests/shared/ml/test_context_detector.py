"""ContextDetector's encoding of a reading outside the calibrated range."""

from __future__ import annotations

import pytest

from shared.ml.context import ContextDetector

pytestmark = pytest.mark.unit


def _calibrated(**params: object) -> ContextDetector:
    det = ContextDetector(calibration=10, **params)  # type: ignore[arg-type]
    for i in range(20):
        det.learn_one({"value": float(i % 5)})  # range 0-4, then fixed
    return det


def test_without_overflow_a_spike_is_the_top_level() -> None:
    det = _calibrated()
    assert det._facts(1000.0) == det._facts(4.0)


def test_with_overflow_a_spike_gets_a_fact_of_its_own_by_side_and_distance() -> None:
    det = _calibrated(overflow=True)
    in_range = {f for v in (0.0, 1.0, 2.0, 3.0, 4.0) for f in det._facts(v)}
    above_near, above_far, below_far = det._facts(5.0), det._facts(1000.0), det._facts(-1000.0)
    assert above_near[:-1] == det._facts(4.0)  # the top level, plus how far out
    extra = {above_near[-1], above_far[-1], below_far[-1]}
    assert len(extra) == 3 and not extra & in_range


def _scores(det: ContextDetector, values: list[float]) -> list[float]:
    out = []
    for v in values:
        out.append(det.score_one({"value": v}))
        det.learn_one({"value": v})
    return out


def test_a_record_after_the_calibration_is_an_alarm_of_its_own() -> None:
    det = _calibrated(rest=5)
    _scores(det, [float(i % 5) for i in range(40)])  # quiet again, patterns learnt
    assert _scores(det, [4.5]) == [1.0]


def test_without_extremes_a_record_is_only_the_top_level() -> None:
    det = _calibrated(rest=5, extremes=False)
    _scores(det, [float(i % 5) for i in range(40)])
    assert _scores(det, [4.5]) != [1.0]


def test_a_record_alarms_during_the_contexts_rest_and_a_climb_of_records_is_one_alarm() -> None:
    det = _calibrated(rest=5)
    _scores(det, [float(i % 5) for i in range(40)])
    det._recent.append(1.0)  # the contexts just alarmed: they rest
    assert _scores(det, [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    # Rest over: the next record alarms again; a value inside what was seen does not.
    assert _scores(det, [12.0]) == [1.0]
    assert _scores(det, [3.0]) != [1.0]


def test_no_record_alarm_while_the_range_is_still_learnt() -> None:
    det = ContextDetector(calibration=100, rest=5)
    scores = _scores(det, [float(i) for i in range(60)])  # every reading a new record
    assert 1.0 not in scores[10:]
