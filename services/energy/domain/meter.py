"""One building meter: expected consumption, anomaly episodes, the next 24 hours.

Kinds of anomaly (alert `kind`):
- `energy.consumption_off_hours`: in an hour the building's learnt schedule says is unoccupied
  (nights, weekends, holidays: `shared.ml.levels`), above the learnt base load for that hour, or
  well above the expected value (heating or lighting left on); before a schedule is learnt,
  "unoccupied" is the calendar's night (22:00-06:00), Sunday or public holiday;
- `energy.consumption_high`: well above the expected value otherwise (a fault);
- `energy.consumption_low`: well below it (a meter that stopped counting, a tripped supply);
- `energy.level_shift`: the building's level of the last day departs from its long-run level
  (a step change, up or down: new equipment, a plant left in another mode), by change-point
  rather than waiting for the profile to drift; once alerted, the new level is learnt;
- `energy.consumption_drift`: the same departure, built up over days (a slow rise: a failing
  control, fouling); once alerted, the new level is learnt;
- `energy.meter_stuck`: the same value for `STUCK_AFTER` where the meter's learnt readings
  say such a run is implausible (never on a meter whose value normally holds there).
- `energy.meter_silent`: a reading after a gap longer than `SILENT_PERIODS` reporting periods
  (an hour at least; shared/runtime/episodes.py `watch_silence`, as for bins and counters): the
  episode's start and end are sent together when the meter speaks again; the alerts service's
  "device silent" rule covers a meter that never does.

An episode opens once anomalous readings in a row have lasted `OPEN_AFTER` (and are
`OPEN_READINGS` at least), or at once on a reading far outside the band (critical), and closes
once normal ones have lasted `CLOSE_AFTER`: one alert event at each end, never one per reading.
Durations are counted in readings of each meter's own reporting interval (`MeterState.cadence`,
shared/runtime/cadence.py). No reading is flagged before the meter's model has seen its day
type and hour on enough days (`MeterState.warm`, shared/ml/warmup.py): the meter is "learning".
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.energy.domain.feedback import FeedbackMemory
from services.energy.domain.weather import OutdoorTemperature
from shared.ml.anomaly import (
    INTERVAL_WIDTH,
    Explanation,
    ResidualDetector,
    make_detector,
    score_of_tail,
)
from shared.ml.calendar import TOWN, TownCalendar
from shared.ml.dayahead import make_forecaster
from shared.ml.levels import LevelVerdict, LevelWatch
from shared.ml.registry import ModelSpec, describe
from shared.ml.timed import PointForecaster, build_forecaster
from shared.ml.warmup import WarmUp, implausibly_steady
from shared.runtime.cadence import Cadence, upgrade_timing
from shared.runtime.checkpoints import Upgradable
from shared.runtime.episodes import Episode as SharedEpisode
from shared.runtime.episodes import EpisodeTracker, watch_silence
from shared.runtime.feedback import Feedback
from shared.runtime.processor import Effects
from shared.schemas import AlertEvent, Reading, Severity
from shared.topics import Domain

METRIC = "energy_kwh"
# Scores at or above this flag a reading: a tail probability of 1e-3, chosen on the simulator's
# labelled weeks (see docs/energy.md): a clean week of 40 meters stays nearly silent.
THRESHOLD = score_of_tail(1e-3)
# Durations, in readings of each meter's reporting interval: 3, 4 and 8 readings of a
# 15-minute meter; 1, 1 and 2 of an hourly one; 45, 60 and 120 of a minute one.
OPEN_AFTER = timedelta(minutes=45)
CLOSE_AFTER = timedelta(hours=1)  # back to normal
STUCK_AFTER = timedelta(hours=2)  # of an identical value
# After three days an "anomaly" is the new normal (new equipment, a changed schedule): learn it.
RELEARN_AFTER = timedelta(days=3)
# One flagged reading is a meter's noise, not yet a fault: an episode needs two at least (an
# hourly meter's 45 minutes would be one), unless that one is far out (critical, three
# band-widths away: a one-hour spike is the fault itself, issue #24).
OPEN_READINGS = 2
FORECAST_HOURS = 24
# What the level watch's verdicts are called (shared/ml/levels.py).
LEVEL_KINDS = {
    "off_hours": "energy.consumption_off_hours",
    "shift": "energy.level_shift",
    "drift": "energy.consumption_drift",
}
# Kinds of the level itself, not of a reading: never critical on one reading, and once alerted
# the watch takes the new level as the meter's.
LEVEL_CHANGES = frozenset({"energy.level_shift", "energy.consumption_drift"})
# The level watch's own name for each of its alert kinds (its false alarms widen its limits).
WATCH_KINDS = {kind: verdict for verdict, kind in LEVEL_KINDS.items()}
SILENT = "energy.meter_silent"
# The forecasters' calendar profiles change every 15 minutes (their slots): asked four times an
# hour, each answer standing for a quarter of an hour's readings.
POINTS_PER_HOUR = 4
# The forecaster BENCHMARKS.md measures ("Forecast quality: building energy"): the stored
# forecasts are its output, and the detector's expected value comes from the same model
# without the fading residual correction.
FORECASTER = ModelSpec(path="shared.ml.dayahead.make_forecaster", params={"domain": "energy"})


@dataclass(frozen=True, slots=True)
class ScoreRow:
    device_id: str
    ts: datetime
    observed: float
    expected: float
    lower: float
    upper: float
    score: float
    is_anomaly: bool
    kind: str | None


@dataclass(frozen=True, slots=True)
class EpisodeRow:
    device_id: str
    kind: str
    started_at: datetime
    ended_at: datetime | None
    severity: str
    peak_score: float
    observed_kwh: float
    expected_kwh: float
    readings: int


@dataclass(frozen=True, slots=True)
class ForecastRow:
    device_id: str
    target_ts: datetime
    issued_at: datetime
    expected: float
    lower: float
    upper: float


@dataclass
class Episode:
    """An episode as checkpoints written before meters used the shared tracker held it: their
    pickles name this class, and `MeterState._upgrade` moves it into the tracker."""

    kind: str
    started_at: datetime
    severity: Severity
    peak_score: float = 0.0
    observed_kwh: float = 0.0
    expected_kwh: float = 0.0
    readings: int = 0
    normal_streak: int = 0


def _tracker() -> EpisodeTracker:
    return EpisodeTracker(
        "energy", open_after=OPEN_AFTER, close_after=CLOSE_AFTER, open_readings=OPEN_READINGS
    )


@dataclass
class MeterState(Upgradable):
    detector: ResidualDetector = field(default_factory=lambda: make_detector("energy"))
    # The forecasts' model: it learns every reading, faults included (a heater left on now is
    # what the next hours will read), unlike the detector's, which must not learn what it flags.
    forecaster: PointForecaster = field(default_factory=lambda: make_forecaster("energy"))
    last_value: float | None = None
    repeats: int = 0
    # The meter's anomaly episodes, whatever their kind (shared/runtime/episodes.py).
    tracker: EpisodeTracker = field(default_factory=_tracker)
    forecast_hour: datetime | None = None
    # Technicians' verdicts on this meter's alerts and what they changed (domain/feedback.py).
    feedback: FeedbackMemory = field(default_factory=FeedbackMemory)
    # The meter's reporting interval: what turns the durations above into readings.
    cadence: Cadence = field(default_factory=Cadence)
    # What the model has seen by day type and hour: no alert before it is warm there, and the
    # stuck rule only where a steady value is implausible for this meter.
    warm: WarmUp = field(default_factory=WarmUp)
    # The meter's level, schedule and base load, learnt (level shifts, drifts, out of hours). A
    # state saved before it existed starts it cold: it flags nothing until it has learnt.
    levels: LevelWatch = field(default_factory=LevelWatch)

    @property
    def episode(self) -> SharedEpisode | None:
        """The meter's open episode, if any."""
        return self.tracker.episode

    def _upgrade(self, old: dict[str, object]) -> None:
        upgrade_timing(self, old)
        # Before the shared tracker: the open episode, or the flagged readings not yet one
        # (time, kind, kWh observed, kWh expected, score), move into it.
        legacy, flagged = self.__dict__.pop("episode", None), self.__dict__.pop("flagged", None)
        if "tracker" not in old:
            self.tracker = _tracker()
            if isinstance(legacy, Episode):
                self.tracker.episode = SharedEpisode(
                    legacy.kind,
                    legacy.started_at,
                    legacy.severity,
                    legacy.peak_score,
                    legacy.readings,
                    totals={
                        "observed_kwh": legacy.observed_kwh,
                        "expected_kwh": legacy.expected_kwh,
                    },
                )
                self.tracker.normal_streak = legacy.normal_streak
            elif isinstance(flagged, list) and flagged:
                tr = self.tracker
                tr.streak, tr.streak_since, tr.streak_kind = (
                    len(flagged),
                    flagged[0][0],
                    flagged[0][1],
                )
                for _, _, observed, expected, score in flagged:
                    tr.streak_peak = max(tr.streak_peak, score)
                    for name, v in _kwh(observed, expected).items():
                        tr.streak_totals[name] = tr.streak_totals.get(name, 0.0) + v
        self.tracker.retime(
            open_after=OPEN_AFTER, close_after=CLOSE_AFTER, open_readings=OPEN_READINGS
        )


def _kwh(observed: float, expected: float) -> dict[str, float]:
    """A reading's share of its episode's totals."""
    return {"observed_kwh": observed, "expected_kwh": expected}


def _version_parts(version: str) -> tuple[str, str, str] | None:
    """(processor and detector, forecaster, calendar) of a model version
    `energy-meter/N:<detector>|<forecaster>@<zone>/<country>`.

    >>> _version_parts("energy-meter/4:d(x)|f(y)@Europe/Paris/FR")
    ('energy-meter/4:d(x)', 'f(y)', 'Europe/Paris/FR')
    """
    head, bar, rest = version.partition("|")
    forecaster, at, calendar = rest.rpartition("@")
    if not bar or not at:
        return None
    return head, forecaster, calendar


def refresh_offset(device_id: str) -> timedelta:
    """The minute past the hour at which a meter refreshes its forecasts (stable across runs:
    CRC-32, not Python's salted `hash`).

    >>> refresh_offset("meter-1") == refresh_offset("meter-1") < timedelta(hours=1)
    True
    """
    return timedelta(minutes=zlib.crc32(device_id.encode()) % 60)


def classify(
    *,
    value: float,
    exp: Explanation,
    ts: datetime,
    stuck: bool,
    calendar: TownCalendar = TOWN,
    level: LevelVerdict | None = None,
) -> str | None:
    """The kind of anomaly a reading shows, or None (`stuck`: the stuck rule's verdict;
    `level`: the level watch's, which says whether the hour is unoccupied for this building).

    >>> e = Explanation(expected=10, lower=7, upper=13, surprise=9, score=0.9)
    >>> from datetime import UTC
    >>> classify(value=30, exp=e, ts=datetime(2026, 1, 5, 12, tzinfo=UTC), stuck=False)
    'energy.consumption_high'
    >>> classify(value=30, exp=e, ts=datetime(2026, 1, 5, 23, tzinfo=UTC), stuck=False)
    'energy.consumption_off_hours'
    >>> classify(value=10, exp=e, ts=datetime(2026, 1, 5, 12, tzinfo=UTC), stuck=True)
    'energy.meter_stuck'
    """
    if stuck:
        return "energy.meter_stuck"
    learnt = level is not None and level.schedule_known
    if exp.score >= THRESHOLD:
        if value > exp.upper:
            off_hours = (
                level.unoccupied if level is not None and learnt else calendar.is_off_hours(ts)
            )
            return "energy.consumption_off_hours" if off_hours else "energy.consumption_high"
        if value < exp.lower:
            return "energy.consumption_low"
    if level is not None and level.kind is not None:
        return LEVEL_KINDS[level.kind]
    return None


def severity_of(kind: str, exp: Explanation, value: float) -> Severity:
    """Critical when the meter is far outside its band (three band-widths), else a warning."""
    band = max(exp.upper - exp.expected, 1e-9)
    if (
        kind != "energy.meter_stuck"
        and kind not in LEVEL_CHANGES
        and abs(value - exp.expected) > 3 * band
    ):
        return Severity.CRITICAL
    return Severity.WARNING


class EnergyProcessor:
    """The runtime's `DeviceProcessor` for building meters."""

    # Fields added since (cadence, warm-up, feedback) are filled in on load (Upgradable): old
    # checkpoints keep their models.
    model_version = "energy-meter/4"

    def __init__(
        self,
        *,
        calendar: TownCalendar = TOWN,
        anomaly_scorer: ModelSpec | None = None,
        forecaster: ModelSpec = FORECASTER,
        temperature_device: str | None = None,
    ) -> None:
        self.calendar = calendar
        # The device whose readings are the outdoor temperature (domain/weather.py), if any.
        self.temperature_device = temperature_device
        self.outdoor = OutdoorTemperature()
        self.anomaly_scorer = anomaly_scorer
        calendar.preload()
        self.forecaster = forecaster
        # Models learnt in another calendar, or another model (class, version, parameters), do
        # not fit this one: the runtime discards their checkpoints and starts afresh.
        detector, forecasts = describe(self._detector()), describe(self._forecaster())
        # What the public register names as running (services/energy/domain/algorithms.py).
        self.model_names = {"detector": detector, "forecaster": forecasts}
        self.model_version = (
            f"{type(self).model_version}:{detector}|{forecasts}"
            f"@{calendar.timezone}/{calendar.country}"
        )

    def _detector(self) -> ResidualDetector:
        scorer = None if self.anomaly_scorer is None else self.anomaly_scorer.build()
        # A forecast that follows the last reading would follow a fault too, and stop seeing
        # it: the detector's forecaster leaves the fading correction out (where it has one).
        forecaster = build_forecaster(self.forecaster, calendar=self.calendar, correct=False)
        return make_detector("energy", calendar=self.calendar, scorer=scorer, forecaster=forecaster)

    def _forecaster(self) -> PointForecaster:
        model: PointForecaster = build_forecaster(self.forecaster, calendar=self.calendar)
        return model

    def adopt(self, state: MeterState, *, stored_version: str) -> MeterState | None:
        """A state saved under another forecaster keeps its detector, warm-up and verdicts; its
        forecasts start afresh (the forecaster is rebuilt). Any other difference: None."""
        ours, theirs = _version_parts(self.model_version), _version_parts(stored_version)
        if ours is None or theirs is None or ours[::2] != theirs[::2]:
            return None
        state.forecaster = self._forecaster()
        state.forecast_hour = None
        return state

    def new_state(self, device_id: str) -> MeterState:
        return MeterState(
            detector=self._detector(),
            forecaster=self._forecaster(),
            warm=WarmUp(calendar=self.calendar),
            levels=LevelWatch(self.calendar.timezone, self.calendar.country),
        )

    @staticmethod
    def learning_until(state: MeterState) -> datetime | None:
        """While the meter's model warms up, roughly when it will be done (else None)."""
        last = state.cadence.last_ts
        return None if last is None else state.warm.learning_until(last)

    @staticmethod
    def warming(state: MeterState) -> dict[str, datetime]:
        """What of the meter's model still warms up, and roughly until when: its band (the
        day types and hours not yet seen on enough days), the level watch's schedule (out of
        hours) and its level changes (shifts and drifts; shared/ml/levels.py). Empty once all
        alert."""
        parts = state.levels.warming()
        band = EnergyProcessor.learning_until(state)
        return parts if band is None else {"band": band, **parts}

    def apply_feedback(
        self, state: MeterState, feedback: Feedback, *, received_at: datetime
    ) -> None:
        """A technician's verdict on one of this meter's alerts (docs/energy.md, "Feedback")."""
        if not state.feedback.apply(feedback, received_at=received_at):
            return
        # A false alarm on one of the level watch's kinds widens its limits in that alert's
        # context; a later verdict on the same alert replaces it (the latest counts).
        state.levels.unwiden(feedback.alert_id)
        watch_kind = WATCH_KINDS.get(feedback.kind)
        if feedback.verdict == "false_alarm" and watch_kind is not None:
            state.levels.widen(
                feedback.alert_id,
                kind=watch_kind,
                start=feedback.episode_start,
                end=feedback.episode_end,
            )

    def process(self, state: MeterState, *, device_id: str, readings: list[Reading]) -> Effects:
        effects = Effects()
        if device_id == self.temperature_device:
            self.outdoor.observe(readings)
            return effects
        state.warm.calendar = self.calendar  # a state restored from an older checkpoint
        if not state.levels.shape and state.levels.calendar != self.calendar:
            # Filled in on load (a checkpoint from before the watch): in the town's calendar.
            state.levels = LevelWatch(self.calendar.timezone, self.calendar.country)
        for r in readings:
            if r.metric == METRIC:
                self._one(state, device_id, r.ts, r.value, effects)
        return effects

    # ---- per reading ----------------------------------------------------------------------------

    def _one(self, s: MeterState, device_id: str, ts: datetime, value: float, out: Effects) -> None:
        x = {"ts": ts, "value": value}
        exp = s.detector.explain_one(x)
        level = s.levels.explain_one(x)
        repeated = s.last_value == value
        s.repeats = s.repeats + 1 if repeated else 0
        self._silence(s, device_id, ts, out)
        # A model that has not seen this day type and hour on enough days says nothing yet.
        kind = (
            classify(
                value=value,
                exp=exp,
                ts=ts,
                stuck=implausibly_steady(
                    s.warm, ts, run=s.repeats + 1, needed=s.cadence.readings(STUCK_AFTER)
                ),
                calendar=self.calendar,
                level=level,
            )
            if s.warm.ready(ts)
            else None
        )
        kind = s.feedback.judge(
            ts=ts, value=value, exp=exp, kind=kind, context=self.calendar.key(ts, slot_minutes=60)
        )
        out.rows.append(
            ScoreRow(
                device_id,
                ts,
                value,
                exp.expected,
                exp.lower,
                exp.upper,
                exp.score,
                kind is not None,
                kind,
            )
        )
        self._episode(s, device_id, ts, value, exp, kind, out)
        # Anomalous readings are not learnt as normal, until an episode has lasted so long that
        # it is the new normal.
        relearn = s.episode is not None and s.episode.readings > s.cadence.readings(RELEARN_AFTER)
        # A period a technician said was expected (planned works) is kept out of learning.
        planned = not s.feedback.learns(ts, default=True, episode_open=s.episode is not None)
        learn = (kind is None or relearn) and not planned
        s.detector.learn_one(x, update_model=learn)
        s.levels.learn_one(x, update_model=learn, measure=not planned)
        if s.episode is not None and (s.episode.kind in LEVEL_CHANGES or relearn):
            # The level change was alerted, or an episode lasted so long that it is the new
            # normal: the watch takes the level as the meter's rather than alert on.
            s.levels.accept()
        s.forecaster.learn_one(value, self._weather(s.forecaster, ts))
        if learn:
            s.warm.learn_one(ts, repeated=repeated)
        s.last_value = value
        self._forecast(s, device_id, ts, out)

    def _weather(self, model: PointForecaster, ts: datetime) -> dict[str, object]:
        """What the forecaster learns with a reading: its time, and the outdoor temperature
        observed then where the town has a source and the model uses it (else exactly as
        without one: a swapped-in regressor would learn a feature its forecasts never get)."""
        uses = getattr(model, "uses_temperature", False)
        temp = None if self.temperature_device is None or not uses else self.outdoor.at(ts)
        return {"ts": ts} if temp is None else {"ts": ts, "temperature_c": temp}

    def _episode(
        self,
        s: MeterState,
        device_id: str,
        ts: datetime,
        value: float,
        exp: Explanation,
        kind: str | None,
        out: Effects,
    ) -> None:
        tr = s.tracker
        # At the opening, the severity is judged for the episode's kind (its first reading's).
        severity = severity_of(tr.opening_kind(kind), exp, value) if kind else Severity.WARNING
        phase = tr.update(
            ts,
            flagged=kind is not None,
            interval=s.cadence.interval,
            severity=severity,
            peak=exp.score,
            kind=kind,
            at_once=kind is not None and severity_of(kind, exp, value) is Severity.CRITICAL,
            add=_kwh(value, exp.expected),
        )
        ep = tr.last
        if phase == "start" and ep is not None:
            out.events.append(self._event(device_id, ep, ts, "start", value, exp))
            out.rows.append(self._episode_row(device_id, ep, None))
        elif phase == "end" and ep is not None:
            out.events.append(self._event(device_id, ep, ts, "end", value, exp))
            out.rows.append(self._episode_row(device_id, ep, ts))
        elif kind is not None and tr.episode is not None:
            out.rows.append(self._episode_row(device_id, tr.episode, None))

    @staticmethod
    def _silence(s: MeterState, device_id: str, ts: datetime, out: Effects) -> None:
        """The meter's cadence learns this reading's time; a gap far longer than its interval
        was a silence (the meter's own episodes table keeps it, with no kWh)."""
        rows: list[Any] = []
        watch_silence(
            device_id=device_id,
            domain=Domain.ENERGY,
            kind=SILENT,
            ts=ts,
            cadence=s.cadence,
            events=out.events,
            rows=rows,
        )
        for r in rows:
            out.rows.append(
                EpisodeRow(
                    r.device_id, r.kind, r.started_at, r.ended_at, r.severity, 0.0, 0.0, 0.0, 1
                )
            )

    @staticmethod
    def _episode_row(device_id: str, ep: SharedEpisode, ended: datetime | None) -> EpisodeRow:
        return EpisodeRow(
            device_id,
            ep.kind,
            ep.started_at,
            ended,
            ep.severity.value,
            ep.peak,
            ep.totals.get("observed_kwh", 0.0),
            ep.totals.get("expected_kwh", 0.0),
            ep.readings,
        )

    @staticmethod
    def _event(
        device_id: str,
        ep: SharedEpisode,
        ts: datetime,
        phase: str,
        value: float,
        exp: Explanation,
    ) -> AlertEvent:
        observed, expected = ep.totals.get("observed_kwh", 0.0), ep.totals.get("expected_kwh", 0.0)
        wasted = max(0.0, observed - expected)
        what = ep.kind.removeprefix("energy.").replace("_", " ")
        message = (
            f"{what}: {value:.2f} kWh observed, {exp.expected:.2f} expected "
            f"({exp.lower:.2f}-{exp.upper:.2f})"
            if phase == "start"
            else f"{what} over after {ep.readings} readings; {wasted:.1f} kWh above expected"
        )
        return AlertEvent(
            event_id=AlertEvent.make_id(
                device_id=device_id, kind=ep.kind, episode_start=ep.started_at, phase=phase
            ),
            device_id=device_id,
            domain=Domain.ENERGY,
            kind=ep.kind,
            phase=phase,  # type: ignore[arg-type]
            severity=ep.severity,
            episode_start=ep.started_at,
            ts=ts,
            explanation={
                "observed": round(value, 4),
                "expected": round(exp.expected, 4),
                "lower": round(exp.lower, 4),
                "upper": round(exp.upper, 4),
                "score": round(exp.score, 6),
                "observed_kwh": round(observed, 3),
                "expected_kwh": round(expected, 3),
                "message": message,
            },
        )

    def _forecast(self, s: MeterState, device_id: str, ts: datetime, out: Effects) -> None:
        """Refresh the hourly forecast of the next 24 h once per hour of readings.

        Each hour's kWh is the sum of its readings' forecasts. The forecaster is asked at most
        `POINTS_PER_HOUR` times an hour, each answer standing for the readings of its part of
        the hour: an hourly or quarter-hourly meter is asked at every reading time (the hourly
        case is what the benchmark scores); a meter reading every minute would otherwise cost
        1,440 forecasts per device each hour, all meters at once at the turn of the hour.
        """
        hour = ts.astimezone(self.calendar.tz).replace(minute=0, second=0, microsecond=0)
        # Meters cross the hour together (a town's report on the quarter hours): refreshed all
        # at once, 2,000 meters would hold the service about a second and write 48,000 rows in
        # one go. Each meter refreshes at its own minute past the hour instead, a pure function
        # of its id, so that a replay refreshes exactly where the first run did.
        turn = (ts - refresh_offset(device_id)).astimezone(self.calendar.tz)
        turn = turn.replace(minute=0, second=0, microsecond=0)
        if s.forecast_hour == turn or not s.cadence.known:
            return
        s.forecast_hour = turn
        steps = max(1, round(timedelta(hours=1) / s.cadence.interval))
        points = min(steps, POINTS_PER_HOUR)
        step = timedelta(hours=1) / points
        scale = s.detector._scale(0.0)  # the detector's own residual scale
        half = INTERVAL_WIDTH * scale * steps**0.5
        for h in range(1, FORECAST_HOURS + 1):
            start = hour + timedelta(hours=h)
            expected = (steps / points) * sum(
                s.forecaster.predict_one({"ts": start + k * step}) for k in range(points)
            )
            out.rows.append(
                ForecastRow(
                    device_id, start, ts, expected, max(0.0, expected - half), expected + half
                )
            )
