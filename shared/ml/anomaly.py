"""Anomaly detection on the residuals of a forecaster, with an adaptive threshold.

How a reading is scored:
1. a forecaster (see `shared.ml.forecast`) says what the sensor usually reads now;
2. the residual is scaled by the recent typical residual (so a noisy meter is judged by its own
   noise), giving a "surprise" r;
3. the mean surprise over the last few readings is compared with the long-run distribution of
   that mean (the *anomaly likelihood* of Ahmad et al., 2017, used by Numenta's NAB entries): the
   score is its upper-tail probability on a log scale, in [0, 1] (0.3 is a tail of 1e-3, 1.0 a
   tail of 1e-10). A single spike scores less than a sustained shift, which is what operators
   want to hear about.

The windows (the current surprise's, the memories of the typical residual and of the long-run
distribution, the probation) are durations where the detector is given a `pace`: its counts
are readings at that pace (4 readings of 15 minutes: an hour), scaled to the reporting interval
the detector learns from the readings' times (`shared.runtime.cadence`), so that an hourly and
a minute meter are judged over the same hour. Without a pace (a series with no clock to trust,
NAB's) they stay counts of readings.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from river import base

from shared.cadence import DEFAULT_INTERVAL, Cadence, readings_for
from shared.ml.calendar import TOWN, TownCalendar
from shared.ml.cells import Ewm, Features
from shared.ml.forecast import CalendarForecaster, make_forecaster
from shared.ml.timed import PointForecaster

# Surprises beyond this are all "very surprising": one absurd reading must not dominate the
# long-run statistics for days.
MAX_SURPRISE = 50.0
# Readings before the typical residual means anything; their surprises are not remembered.
WARM_UP = 10
# Residuals are this many "typical residuals" wide on each side of the expected value: about
# a 3-sigma band (the mean absolute deviation of a normal is 0.8 sigma).
INTERVAL_WIDTH = 3.75


@dataclass(frozen=True, slots=True)
class Explanation:
    expected: float
    lower: float
    upper: float
    surprise: float
    score: float


# Scores grow with the number of decades of the tail probability: 1 - exp(-decades / 3), so a
# tail of 1e-3 scores 0.63 and one of 1e-10 scores 0.96. Unlike the plain CDF, which rounds to
# 1.0 beyond z ~ 8, big and huge surprises stay apart (up to z ~ 20), so they can be ranked.
SCORE_DECADES = 3.0


def tail_score(z: float) -> float:
    """Score in [0, 1) of a standard normal `z` by its upper-tail probability.

    >>> round(tail_score(0.0), 2), round(tail_score(3.09), 2), round(tail_score(6.36), 2)
    (0.1, 0.63, 0.96)
    """
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    return score_of_tail(tail)


def score_of_tail(tail: float) -> float:
    """The score of a tail probability (what thresholds are written in)."""
    decades = -math.log10(max(tail, 1e-300))
    return 1.0 - math.exp(-decades / SCORE_DECADES)


class ResidualDetector(base.AnomalyDetector):
    """Scores each reading in [0, 1] by how far it is from the forecast; learns it afterwards.

    Parameters
    ----------
    forecaster
        What the value usually is: a `CalendarForecaster` ("generic") by default; any
        forecaster answering ``predict_one({"ts": ...})`` and ``spread_one`` (a River model
        wrapped by `shared.ml.timed`).
    short_window
        Readings averaged for the current surprise: 4 x 15 min = an hour of a building.
    long_alpha
        Weight of a new short-mean in the long-run distribution: 0.002 is a memory of about
        500 readings (five days of 15-minute readings).
    residual_alpha
        Weight of a new absolute residual in the typical residual.
    probation
        Readings scored 0 while the models learn (NAB's probationary period is 15% of a file).
    on
        The feature holding the reading (``x["ts"]``, when present, is its time).
    pace
        The reporting interval the counts above are written for: each window is then the
        duration of its readings at this pace, scaled to the interval of the readings the
        detector sees (learnt from ``x["ts"]``). None: counts of readings, whatever their pace.
        The domains' detectors (`make_detector`) count at 15 minutes.
    scorer
        Any River anomaly detector to score with instead of the anomaly likelihood (e.g.
        ``river.anomaly.HalfSpaceTrees``). It sees ``{"surprise": ...}``, the residual in
        typical residuals divided by `MAX_SURPRISE` (so in [0, 1], as HalfSpaceTrees wants);
        the forecast, band and explanation stay the forecaster's.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> det = ResidualDetector(forecaster=make_forecaster("generic"), probation=50)
    >>> t0 = datetime(2026, 1, 5, tzinfo=UTC)
    >>> for i in range(400):
    ...     x = {"ts": t0 + timedelta(minutes=5 * i), "value": 10.0 + (i % 3)}
    ...     _ = det.score_one(x); det.learn_one(x)
    >>> calm = det.score_one({"ts": t0 + timedelta(minutes=2000), "value": 11.0})
    >>> for k in range(4):
    ...     x = {"ts": t0 + timedelta(minutes=2005 + 5 * k), "value": 60.0}
    ...     shifted = det.score_one(x); det.learn_one(x)
    >>> calm < 0.9 < shifted
    True
    """

    version = 4

    def __init__(
        self,
        forecaster: PointForecaster | None = None,
        short_window: int = 4,
        long_alpha: float = 0.002,
        residual_alpha: float = 0.05,
        probation: int = 150,
        on: str = "value",
        scorer: base.AnomalyDetector | None = None,
        pace: timedelta | None = None,
    ) -> None:
        self.forecaster: PointForecaster = (
            forecaster if forecaster is not None else CalendarForecaster()
        )
        self.short_window = short_window
        self.long_alpha = long_alpha
        self.residual_alpha = residual_alpha
        self.probation = probation
        self.on = on
        self.scorer = scorer
        self.abs_residual = Ewm(alpha=residual_alpha)
        self.recent: deque[float] = deque()
        self.long_run = Ewm(alpha=long_alpha)
        self.seen = 0
        self.pace = pace
        # The reporting interval of the readings seen, learnt from their times.
        self.cadence = Cadence()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A checkpoint written before windows were durations counted readings: it goes on so.
        state.setdefault("pace", None)
        state.setdefault("cadence", Cadence())
        self.__dict__.update(state)

    def __repr__(self) -> str:
        # The model's name in checkpoints (shared.ml.registry.describe): without a pace, or at
        # the domains' 15 minutes (the same windows on their 15-minute devices), it is the
        # name detectors had before the pace existed, so that their checkpoints still load.
        text = super().__repr__()
        if self.pace is None or self.pace == DEFAULT_INTERVAL:
            return text.replace(f"\n  pace={self.pace}", "")
        return text

    # ---- windows, scaled to the reporting interval -----------------------------------------------

    def _readings(self, count: int) -> int:
        """The readings of the seen interval covering `count` readings at the pace."""
        if self.pace is None or self.cadence.interval == self.pace:
            return count
        return readings_for(count * self.pace, self.cadence.interval)

    def _alpha(self, alpha: float) -> float:
        """A per-reading weight at the pace, as a weight per reading of the seen interval (the
        same memory in time)."""
        if self.pace is None or self.cadence.interval == self.pace:
            return alpha
        return min(1.0, 1.0 - float((1.0 - alpha) ** (self.cadence.interval / self.pace)))

    @classmethod
    def _unit_test_params(cls) -> Any:
        # River's checks feed the credit-card data set: score its amounts.
        yield {"on": "Amount", "probation": 20}

    def _xy(self, x: Mapping[Any, Any]) -> tuple[Features, float]:
        """The forecaster's features (the time, if known) and the reading."""
        value = x.get(self.on)
        y = math.nan if value is None else float(value)
        return ({"ts": x["ts"]} if "ts" in x else {}), y

    def explain_one(self, x: Mapping[Any, Any]) -> Explanation:
        """Expected value, interval and score of `x["value"]`, without learning."""
        fx, y = self._xy(x)
        expected = self.forecaster.predict_one(fx)
        scale = self._scale(expected, fx)
        surprise = 0.0 if math.isnan(y) else min(abs(y - expected) / scale, MAX_SURPRISE)
        window = [*self._past(), surprise]
        short = sum(window) / len(window)
        if self.seen < self._readings(self.probation) or self.long_run.n < 2:
            score = 0.0
        elif self.scorer is not None:
            score = min(1.0, max(0.0, float(self.scorer.score_one(_scorer_x(surprise)))))
        else:
            spread = max(self.long_run.std, 1e-3)
            score = tail_score((short - self.long_run.mean) / spread)
        half = INTERVAL_WIDTH * scale
        return Explanation(expected, expected - half, expected + half, surprise, score)

    def score_one(self, x: Mapping[Any, Any]) -> float:
        return self.explain_one(x).score

    def _past(self) -> list[float]:
        """The remembered surprises in the current window, besides the reading's own."""
        if self.pace is None:
            # Counts of readings: as NAB's generic parameters were chosen (a window of one
            # reading averages it with the previous one).
            return list(self.recent)[-(self.short_window - 1) :]
        keep = self._readings(self.short_window) - 1
        return list(self.recent)[len(self.recent) - keep :] if keep > 0 else []

    def learn_one(self, x: Mapping[Any, Any], *, update_model: bool = True) -> None:
        """Remember the reading's surprise; learn the value too unless `update_model` is False.

        A domain service passes False while an anomaly episode lasts, so that a heater left on
        for a weekend does not become the new normal before anyone looked at it.
        """
        fx, value = self._xy(x)
        if isinstance(ts := fx.get("ts"), datetime):
            self.cadence.observe(ts)
        if math.isnan(value):  # a missing reading teaches nothing
            return
        expected = self.forecaster.predict_one(fx)
        surprise = min(abs(value - expected) / self._scale(expected, fx), MAX_SURPRISE)
        if self.abs_residual.n >= WARM_UP:
            self.recent.append(surprise)
            while len(self.recent) > self._readings(self.short_window):
                self.recent.popleft()
            if update_model:
                self.long_run.alpha = self._alpha(self.long_alpha)
                self.long_run.update(sum(self.recent) / len(self.recent))
        if update_model:
            if self.scorer is not None:
                self.scorer.learn_one(_scorer_x(surprise))
            self.abs_residual.alpha = self._alpha(self.residual_alpha)
            self.abs_residual.update(abs(value - expected))
            self.forecaster.learn_one(value, fx)
        self.seen += 1

    def _scale(self, expected: float, x: Features | None = None) -> float:
        """The typical residual here, in mean-absolute-deviation units.

        The larger of the recent residuals and, when the forecaster knows it, the spread of
        this very slot (a Monday 9:00 varies more than a Sunday 3:00).
        """
        scale = self.abs_residual.mean
        if x is not None and (spread := self.forecaster.spread_one(x)) is not None:
            scale = max(scale, 0.8 * spread)
        # Never divide by ~0: a flat series would make every wiggle infinitely surprising.
        return max(scale, 1e-3 * abs(expected) + 1e-6)


def _scorer_x(surprise: float) -> dict[Hashable, Any]:
    return {"surprise": surprise / MAX_SURPRISE}


def make_detector(
    domain: str = "generic",
    *,
    slot_minutes: int = 15,
    calendar: TownCalendar = TOWN,
    scorer: base.AnomalyDetector | None = None,
    forecaster: PointForecaster | None = None,
) -> ResidualDetector:
    """The detector the domain services use (and the NAB benchmark measures, as "generic").

    Buildings are judged over the last hour against about five days; a generic series (no
    weekly rhythm to lean on) reading by reading, against a slowly adapting noise level. The
    generic parameters were chosen among a handful of settings on the NAB corpus itself (see
    BENCHMARKS.md): its NAB score is therefore an in-sample figure. `forecaster` replaces the
    domain's own (a town's setting, see `shared.ml.timed.build_forecaster`).
    """
    if forecaster is None:
        forecaster = make_forecaster(
            domain, slot_minutes=slot_minutes, calendar=calendar, correct=False
        )
    if domain in ("traffic", "weekly"):
        # Windows written at 15-minute readings: durations on a device of any pace.
        return ResidualDetector(forecaster=forecaster, scorer=scorer, pace=DEFAULT_INTERVAL)
    if domain == "energy":
        # Still counts of readings: the energy service's rules were tuned on hourly buildings
        # with a four-reading (four-hour) window; an hour there flags a +40 % step as many
        # high-consumption episodes instead of one level shift (issue #24: to retune first).
        return ResidualDetector(forecaster=forecaster, scorer=scorer)
    return ResidualDetector(
        forecaster=forecaster,
        short_window=1,
        long_alpha=0.0005,
        residual_alpha=0.0005,
        scorer=scorer,
        pace=None,
    )
