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
