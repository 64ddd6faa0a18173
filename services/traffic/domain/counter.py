"""One road counter: expected flow by time of week, the next hour's forecast, incidents.

Readings: `vehicles` per interval (15 minutes by default) and, when vehicles passed, their
mean `speed_kmh`.

Expected flow and speed: a `WeeklyProfile` per metric (a cell per weekday and 15-minute slot,
shrunk towards the day type's while young; the town's public holidays apart) inside a
`ResidualDetector`, which scores how far a reading is from it (anomaly likelihood over the last
hour, in [0, 1]). Forecast: the flow profile plus the fading correction of the latest residual
(`ResidualAR`: a jam now says something about the next 15 minutes, little about the next hour),
for the next four 15-minute steps, with a ~90% interval.

Kinds of anomaly (alert `kind`), a reading being anomalous when its score is >= `THRESHOLD`
and it lies outside the expected interval:
- `traffic.incident`: flow far below expected (an accident, road works, a closed lane);
  critical when the speed dropped too;
- `traffic.congestion`: speed far below expected while the flow is not low (a jam); slow with
  at most `BLOCKED_SHARE` of the expected vehicles is an incident (the road is blocked);
- `traffic.flow_high`: flow far above expected (an event, a diversion);
- `traffic.counter_silent`: a reading after a gap longer than `SILENT_PERIODS` reporting
  periods. Silence is only seen when the counter speaks again, so that episode's start and
  end are sent together; the alerts service's "device silent" rule covers a counter that never
  comes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.ml.anomaly import Explanation, ResidualDetector, make_detector, score_of_tail
from shared.ml.calendar import TOWN, TownCalendar
from shared.ml.registry import ModelSpec, describe
from shared.ml.timed import build_forecaster
from shared.ml.warmup import WarmUp
from shared.ml.weekly import ResidualAR
from shared.runtime.cadence import Cadence, upgrade_timing
from shared.runtime.checkpoints import Upgradable
from shared.runtime.episodes import (
    Episode,
    EpisodeTracker,
    Phase,
    alert,
    row_of,
    watch_silence,
)
from shared.runtime.processor import Effects
from shared.schemas import AlertEvent, Reading, Severity
from shared.topics import Domain

VEHICLES, SPEED = "vehicles", "speed_kmh"
# Scores at or above this flag a reading (a tail probability of 1e-3, as for energy);
# chosen on the simulator's labelled weeks (docs/traffic.md): a clean week of 12 counters
# raised nothing, each road incident opened an episode from its first reading.
THRESHOLD = score_of_tail(1e-3)
# Durations, in readings of each counter's own reporting interval (shared/runtime/cadence.py):
# two readings of a 15-minute counter, one of an hourly one.
OPEN_AFTER = timedelta(minutes=30)
CLOSE_AFTER = timedelta(minutes=45)  # back to normal
FORECAST_STEPS = 4
# Interval half-width in typical residuals (mean absolute deviations): 2.06 MAD ~ 1.645 sigma,
# a ~90% interval for normal errors.
FORECAST_WIDTH = 2.06
KINDS = ("traffic.incident", "traffic.congestion", "traffic.flow_high")
# Slow traffic with at most this share of the expected vehicles is a blocked road (an incident),
# not a busy one (a jam keeps most of its flow): the flow's own band is wide where counts vary
# from day to day (a 100-vehicle slot's lower edge was below 0 on the simulated town), so a
# count that has fallen by half rarely reaches the threshold on its own while the speed does.
BLOCKED_SHARE = 0.5
# The expected flow and speed: a weekday profile by 15-minute slot. The forecast adds the
# counter's own fading residual correction (`CounterState.residual`) to it.
FORECASTER = ModelSpec(
    path="shared.ml.forecast.make_forecaster", params={"domain": "weekly", "slot_minutes": 15}
)


@dataclass(frozen=True, slots=True)
class FlowRow:
    device_id: str
    ts: datetime
    vehicles: float
    speed_kmh: float | None
    expected: float
    lower: float
    upper: float
    expected_speed: float | None
    score: float
    is_anomaly: bool
    kind: str | None


@dataclass(frozen=True, slots=True)
class ForecastRow:
    device_id: str
    target_ts: datetime
    issued_at: datetime
    expected: float
    lower: float
    upper: float


def _detector(
    calendar: TownCalendar = TOWN,
    scorer: ModelSpec | None = None,
    forecaster: ModelSpec = FORECASTER,
) -> ResidualDetector:
    return make_detector(
        "weekly",
        slot_minutes=15,
        calendar=calendar,
        scorer=None if scorer is None else scorer.build(),
        forecaster=build_forecaster(forecaster, calendar=calendar, correct=False),
    )


@dataclass
class CounterState(Upgradable):
    flow: ResidualDetector = field(default_factory=_detector)
    speed: ResidualDetector = field(default_factory=_detector)
    residual: ResidualAR = field(default_factory=ResidualAR)
    trackers: dict[str, EpisodeTracker] = field(
        default_factory=lambda: {
            k: EpisodeTracker(k, open_after=OPEN_AFTER, close_after=CLOSE_AFTER) for k in KINDS
        }
    )
    cadence: Cadence = field(default_factory=Cadence)
    # No alert before the profile has seen the reading's day type and hour on enough days.
    warm: WarmUp = field(default_factory=WarmUp)

    def _upgrade(self, old: dict[str, object]) -> None:
        upgrade_timing(self, old)
        for tracker in self.trackers.values():
            tracker.retime(open_after=OPEN_AFTER, close_after=CLOSE_AFTER)


def classify(
    *, vehicles: float, flow: Explanation, speed: float | None, speed_exp: Explanation | None
) -> tuple[str | None, Severity]:
    """The kind of anomaly a reading shows (or None), and its severity.

    >>> calm = Explanation(expected=100, lower=80, upper=120, surprise=0, score=0.05)
    >>> odd = Explanation(expected=100, lower=80, upper=120, surprise=9, score=0.9)
    >>> slow = Explanation(expected=50, lower=40, upper=60, surprise=9, score=0.9)
    >>> classify(vehicles=30, flow=odd, speed=12, speed_exp=slow)
    ('traffic.incident', <Severity.CRITICAL: 'critical'>)
    >>> classify(vehicles=100, flow=calm, speed=12, speed_exp=slow)[0]
    'traffic.congestion'
    >>> classify(vehicles=100, flow=calm, speed=50, speed_exp=calm)[0] is None
    True
    >>> classify(vehicles=40, flow=calm, speed=12, speed_exp=slow)  # slow and half empty
    ('traffic.incident', <Severity.CRITICAL: 'critical'>)
    """
    flow_odd = flow.score >= THRESHOLD
    low, high = flow_odd and vehicles < flow.lower, flow_odd and vehicles > flow.upper
    slow = (
        speed is not None
        and speed_exp is not None
        and speed_exp.score >= THRESHOLD
        and speed < speed_exp.lower
    )
    blocked = slow and vehicles <= BLOCKED_SHARE * flow.expected
    if low or blocked:
        return "traffic.incident", Severity.CRITICAL if slow else Severity.WARNING
    if slow:
        return "traffic.congestion", Severity.WARNING
    if high:
        return "traffic.flow_high", Severity.INFO
    return None, Severity.INFO


class TrafficProcessor:
    """The runtime's `DeviceProcessor` for road counters."""

    model_version = "traffic-counter/2"

    def __init__(
        self,
        *,
        calendar: TownCalendar = TOWN,
        anomaly_scorer: ModelSpec | None = None,
        forecaster: ModelSpec = FORECASTER,
    ) -> None:
        self.calendar = calendar
        self.anomaly_scorer = anomaly_scorer
        calendar.preload()
        self.forecaster = forecaster
        # Models learnt in another calendar, or another model (class, version, parameters), do
        # not fit this one: the runtime discards their checkpoints and starts afresh.
        model = describe(self._detector())
        # What the public register names as running (services/traffic/domain/algorithms.py).
        self.model_names = {"detector": model}
        self.model_version = (
            f"{type(self).model_version}:{model}@{calendar.timezone}/{calendar.country}"
        )

    def _detector(self) -> ResidualDetector:
        return _detector(self.calendar, self.anomaly_scorer, self.forecaster)

    def new_state(self, device_id: str) -> CounterState:
        return CounterState(
            flow=self._detector(), speed=self._detector(), warm=WarmUp(calendar=self.calendar)
        )

    @staticmethod
    def learning_until(state: CounterState) -> datetime | None:
        """While the counter's profile warms up, roughly when it will be done (else None)."""
        last = state.cadence.last_ts
        return None if last is None else state.warm.learning_until(last)

    def process(self, state: CounterState, *, device_id: str, readings: list[Reading]) -> Effects:
        out = Effects()
        state.warm.calendar = self.calendar  # a state restored from an older checkpoint
        # A message carries both metrics of one interval: handle them together.
        by_ts: dict[datetime, dict[str, float]] = {}
        for r in readings:
            by_ts.setdefault(r.ts, {})[r.metric] = r.value
        for ts in sorted(by_ts):
            metrics = by_ts[ts]
            self._silence(state, device_id, ts, out)
            if VEHICLES in metrics:
                self._one(state, device_id, ts, metrics[VEHICLES], metrics.get(SPEED), out)
        return out

    def _one(
        self,
        s: CounterState,
        device_id: str,
        ts: datetime,
        vehicles: float,
        speed: float | None,
        out: Effects,
    ) -> None:
        x = {"ts": ts, "value": vehicles}
        flow = s.flow.explain_one(x)
        xs = {"ts": ts, "value": speed} if speed is not None else None
        speed_exp = s.speed.explain_one(xs) if xs is not None else None
        kind, severity = classify(vehicles=vehicles, flow=flow, speed=speed, speed_exp=speed_exp)
        blocked = s.trackers["traffic.incident"]
        if kind == "traffic.congestion" and (blocked.active or blocked.streak > 0):
            # A blocked road stays an incident while the traffic is slow: a count wobbling
            # around `BLOCKED_SHARE` would otherwise split one incident into two alerts (or
            # delay both), one congestion and one incident.
            kind, severity = "traffic.incident", Severity.CRITICAL
        if not s.warm.ready(ts):
            kind = None  # a profile that has not seen this slot enough says nothing yet
        score = max(flow.score, speed_exp.score if speed_exp is not None else 0.0)
        out.rows.append(
            FlowRow(
                device_id,
                ts,
                vehicles,
                speed,
                flow.expected,
                max(0.0, flow.lower),
                flow.upper,
                speed_exp.expected if speed_exp is not None else None,
                score,
                kind is not None,
                kind,
            )
        )
        explanation: dict[str, object] = {
            "vehicles": vehicles,
            "expected_vehicles": round(flow.expected, 1),
            "lower": round(max(0.0, flow.lower), 1),
            "upper": round(flow.upper, 1),
            "speed_kmh": speed,
            "expected_speed_kmh": None if speed_exp is None else round(speed_exp.expected, 1),
            "score": round(score, 6),
        }
        for k, tracker in s.trackers.items():
            was_active = tracker.active
            phase = tracker.update(
                ts,
                flagged=kind == k,
                interval=s.cadence.interval,
                severity=severity,
                peak=score,
                explanation=explanation,
            )
            ep = tracker.last
            if ep is None or not (phase or (was_active and kind == k)):
                continue
            out.rows.append(row_of(device_id, ep))
            if phase is not None:
                out.events.append(self._event(device_id, ep, phase, ts, explanation))
        # Anomalous readings are not learnt as normal; the residual's persistence is (an
        # incident now is what the next 15 minutes will look like).
        s.residual.learn_one(x, vehicles - s.flow.forecaster.predict_one(x))
        s.flow.learn_one(x, update_model=kind is None)
        if kind is None:
            s.warm.learn_one(ts)
        if xs is not None:
            s.speed.learn_one(xs, update_model=kind is None)
        self._forecast(s, device_id, ts, out)

    @staticmethod
    def _event(
        device_id: str, ep: Episode, phase: Phase, ts: datetime, explanation: Mapping[str, object]
    ) -> AlertEvent:
        what = ep.kind.removeprefix("traffic.").replace("_", " ")
        if phase == "start":
            speed = explanation.get("speed_kmh")
            message = (
                f"{what}: {explanation['vehicles']:.0f} vehicles, "
                f"{explanation['expected_vehicles']} expected "
                f"({explanation['lower']}-{explanation['upper']})"
            )
            if speed is not None:
                message += f"; {speed} km/h, {explanation['expected_speed_kmh']} expected"
        else:
            message = f"{what} over after {ep.readings} readings"
        return alert(
            device_id=device_id,
            domain=Domain.TRAFFIC,
            ep=ep,
            phase=phase,
            ts=ts,
            explanation={**explanation, "message": message},
        )

    def _forecast(self, s: CounterState, device_id: str, ts: datetime, out: Effects) -> None:
        if not s.cadence.known:
            return
        for k in range(1, FORECAST_STEPS + 1):
            target = ts + k * s.cadence.interval
            x = {"ts": target}
            expected = max(0.0, s.flow.forecaster.predict_one(x) + s.residual.predict_one(x))
            half = FORECAST_WIDTH * s.flow._scale(expected, x)  # the detector's residual scale
            out.rows.append(
                ForecastRow(
                    device_id, target, ts, expected, max(0.0, expected - half), expected + half
                )
            )

    def _silence(self, s: CounterState, device_id: str, ts: datetime, out: Effects) -> None:
        watch_silence(
            device_id=device_id,
            domain=Domain.TRAFFIC,
            kind="traffic.counter_silent",
            ts=ts,
            cadence=s.cadence,
            events=out.events,
            rows=out.rows,
        )
