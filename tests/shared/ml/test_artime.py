"""ARTimeDetector: River's contract (a score changes nothing), its probation, records, the bound
on its categories, and checkpoints."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest

from shared.ml.artime import ARTimeDetector, Resonance, haar
from shared.ml.registry import ModelSpec

pytestmark = pytest.mark.unit


def wave(n: int, *, seed: int = 3, spikes: dict[int, float] | None = None) -> list[float]:
    rng = random.Random(seed)
    spikes = spikes or {}
    return [
        50 + 20 * math.sin(2 * math.pi * i / 96) + rng.gauss(0, 1) + spikes.get(i, 0.0)
        for i in range(n)
    ]


def run(det: ARTimeDetector, values: list[float], *, score: bool = True) -> list[float]:
    out = []
    for v in values:
        out.append(det.score_one({"value": v}) if score else 0.0)
        det.learn_one({"value": v})
    return out


def test_haar_is_orthonormal_and_ordered_coarse_to_fine() -> None:
    x = np.array([4.0, 2.0, 5.0, 5.0, 1.0, 3.0, 0.0, 0.0])
    h = haar(x)
    assert np.isclose(np.linalg.norm(h), np.linalg.norm(x))  # energy kept
    assert np.isclose(h[0], x.sum() / math.sqrt(8))  # the approximation first
    assert np.allclose(h[4:], (x[1::2] - x[0::2]) / math.sqrt(2))  # finest details last


def test_nothing_is_scored_during_the_probation_then_a_spike_is_the_top_score() -> None:
    values = wave(3000, spikes={2000: 80.0})
    scores = run(ARTimeDetector(), values)
    assert not any(scores[:300])
    assert scores[2000] == 1.0 == max(scores)  # beyond every reading seen: a record
    assert sum(s > 0 for s in scores) <= 8  # a few alarms in 2,700 readings, not a stream


def test_scoring_changes_nothing() -> None:
    """score_one may be called any number of times, or not at all: the scores are the same."""
    values = wave(1500, spikes={900: -60.0, 1200: 45.0})
    scored, unscored = ARTimeDetector(), ARTimeDetector()
    for i, v in enumerate(values):
        x = {"value": v}
        first = scored.score_one(x)
        assert scored.score_one(x) == first
        if i % 7 == 0:  # now and then, the other one is asked after a reading it never scored
            assert unscored.score_one(x) == first
        scored.learn_one(x)
        unscored.learn_one(x)
    assert np.array_equal(scored._art.weights, unscored._art.weights)


def test_a_record_alarms_once_per_rest() -> None:
    det = ARTimeDetector(probation=100, record_rest=50)
    run(det, wave(400))
    top = max(wave(400)) + 1
    assert det.score_one({"value": top}) == 1.0
    det.learn_one({"value": top})
    assert det._record(top + 1) == 0.0  # resting
    run(det, wave(60, seed=4))
    assert det._record(top + 2) == 1.0  # the rest is over


def test_a_known_range_scales_instead_of_the_probation() -> None:
    values = wave(400)
    learnt, known = ARTimeDetector(probation=100), ARTimeDetector(probation=100, lo=0, hi=200)
    run(learnt, values)
    run(known, values)
    assert learnt._scale == (min(values[:100]), max(values[:100]) - min(values[:100]))
    assert known._scale == (0, 200)


def test_categories_are_bounded_and_the_stalest_one_is_replaced() -> None:
    art = Resonance(2, capacity=3)
    art.lower = art.upper = 0.99  # every distinct input is a category of its own
    inputs = [np.array(v) for v in ([0.1, 0.9], [0.9, 0.1], [0.5, 0.5], [0.1, 0.9], [0.3, 0.7])]
    for f in inputs:
        x, meet, m, _ = art.match(f)
        art.learn(x, meet, m)
    assert len(art.weights) == 3
    # [0.1, 0.9] learnt again at step 4: the ones-category (step 0) went first, then [0.9, 0.1].
    kept = {tuple(np.round(w[:2], 2)) for w in art.weights}
    assert kept == {(0.1, 0.9), (0.5, 0.5), (0.3, 0.7)}


def test_a_long_stream_keeps_at_most_max_categories() -> None:
    rng = random.Random(5)
    walk = [0.0]
    for _ in range(3000):
        walk.append(walk[-1] + rng.gauss(0, 1))
    unbounded, bounded = (
        ARTimeDetector(probation=100),
        ARTimeDetector(probation=100, max_categories=16),
    )
    run(unbounded, walk, score=False)
    run(bounded, walk, score=False)
    assert len(unbounded._art.weights) > 50
    assert len(bounded._art.weights) == 16


def test_a_checkpoint_goes_on_exactly() -> None:
    values = wave(2000, spikes={1500: 70.0, 1800: -50.0})
    det = ARTimeDetector()
    run(det, values[:1000])
    back = pickle.loads(pickle.dumps(det))
    assert run(back, values[1000:]) == run(det, values[1000:])


@pytest.mark.parametrize(
    "params",
    [{"window": 6}, {"window": 1}, {"probation": 10}, {"max_categories": 1}],
)
def test_bad_parameters_are_refused(params: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ARTimeDetector(**params)  # type: ignore[arg-type]


def test_a_town_can_name_it_as_the_scorer_of_surprises() -> None:
    from shared.ml.anomaly import make_detector

    scorer = ModelSpec(path="shared.ml.artime.ARTimeDetector", params={"on": "surprise"}).build()
    det = make_detector("generic", scorer=scorer)
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    scores = []
    for i, v in enumerate(wave(1200, spikes={1000: 90.0})):
        x = {"ts": t0 + timedelta(minutes=15 * i), "value": v}
        scores.append(det.score_one(x))
        det.learn_one(x)
    assert max(scores[1000:1003]) == max(scores) > 0.5
