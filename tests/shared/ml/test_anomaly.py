"""The residual detector's windows are durations: a device reporting every minute, every 15
minutes or every hour is judged over the same hour of its readings (issue #24, "durations
hold on 1-min, 15-min and hourly devices").

Pure logic: one series (a noisy steady value with one spike ten days in) sampled at each
interval; the spike is not learnt, as a domain service does not learn a flagged reading.
"""

from __future__ import annotations

import copy
import pickle
import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.ml.anomaly import ResidualDetector, make_detector, score_of_tail
from shared.ml.forecast import make_forecaster

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, tzinfo=UTC)
SPIKE = T0 + timedelta(days=10)
HOUR = timedelta(hours=1)
# The domains' threshold (services/energy/domain/meter.py): a tail of one in a thousand.
FLAGGED = score_of_tail(1e-3)


def flagged_times(det: ResidualDetector, interval: timedelta) -> list[timedelta]:
    """When, relative to the spike, readings from 2 h before it to 3 h after score flagged."""
    rng = random.Random(3)
    out, ts = [], T0
    while ts < SPIKE + 3 * HOUR:
        x = {"ts": ts, "value": 60.0 if ts == SPIKE else 10 + rng.gauss(0, 1)}
        score = det.score_one(x)
        det.learn_one(x, update_model=ts != SPIKE)
        if ts >= SPIKE - 2 * HOUR and score >= FLAGGED:
            out.append(ts - SPIKE)
        ts += interval
    return out


@pytest.mark.parametrize("minutes", [1, 15, 60])
def test_a_spike_weighs_on_the_next_hour_whatever_the_reporting_interval(minutes: int) -> None:
    interval = timedelta(minutes=minutes)
    det = ResidualDetector(forecaster=make_forecaster("generic"), pace=15 * timedelta(minutes=1))
    # Exactly the readings of the hour from the spike on: 60, 4 and 1 of them.
    hour_from_spike = [k * interval for k in range(HOUR // interval)]
    assert flagged_times(det, interval) == hour_from_spike


def test_without_a_pace_windows_stay_counts_of_readings() -> None:
    # NAB's generic detector: a window of one reading (averaged with the previous one), at
    # any interval: the spike weighs on two readings, a minute or two hours.
    for minutes in (1, 60):
        det = make_detector("generic")
        det.probation = 20
        interval = timedelta(minutes=minutes)
        assert flagged_times(det, interval) == [timedelta(0), interval]


@pytest.mark.parametrize("domain", ["energy", "traffic"])
def test_a_detector_checkpointed_before_durations_loads_and_goes_on_as_it_did(domain: str) -> None:
    fresh = make_detector(domain)
    old = make_detector(domain)
    for name in ("pace", "cadence"):  # what a checkpoint written before held not
        del old.__dict__[name]
    restored = pickle.loads(pickle.dumps(old))
    # The same model by name (its checkpoints are kept); it counts readings as it did.
    assert repr(restored) == repr(fresh) and restored.pace is None
    rng = random.Random(5)
    counting = copy.deepcopy(fresh)
    counting.pace = None  # counts readings, as every detector did before
    for k in range(300):
        x = {"ts": T0 + k * HOUR, "value": 10 + rng.gauss(0, 1) + 30 * (k == 250)}
        assert restored.score_one(x) == counting.score_one(x)
        restored.learn_one(x)
        counting.learn_one(x)
