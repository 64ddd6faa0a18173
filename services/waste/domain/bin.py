"""One waste bin: cleaned fill level, fill rate by weekday and hour, collections, time to full,
and anomaly episodes.

Readings: `fill_pct` (ultrasonic, noisy; now and then a glitch of 0 or 100; sometimes stuck)
and optionally `temperature_c`.

Cleaned level: a filter whose prediction step adds the learnt fill rate and whose correction
step weighs a new reading by `LEVEL_ALPHA`. A reading further than `JUMP_PCT` from the
prediction is held back one reading: confirmed by the next (same side, still far), it is real
(a collection when it is a drop of `COLLECTION_DROP_PCT` or more, else a jump); contradicted,
it was a glitch and is ignored.

Fill rate: the difference of consecutive hourly means of the accepted readings (percentage
points per hour), learnt by (weekday, hour) in a `WeeklyProfile`, outside collections, full
bins and anomalies. The model is a setting (`FILL_MODEL`, `TOWNPULSE_WASTE_FILL_MODEL`): any
River regressor, fed the town's calendar features of the hour (`shared.ml.timed`).
Time to full integrates that rate forward from the cleaned level until the threshold; its
uncertainty is the bin's own typical error, learnt each time the bin does
cross the threshold (relative to how far ahead each prediction was made).

Kinds of anomaly (alert `kind`):
- `waste.abnormal_fill`: the level rose `ABNORMAL_EXCESS_PCT` more than expected within two
  hours (half the headroom for a nearly full bin, at least `MIN_EXCESS_PCT`), and at least
  twice what was expected (illegal dumping, an event); not when it only came back to where a
  "collection" within those two hours dropped it from (two glitches in a row, `_came_back`);
- `waste.fire_risk`: temperature `FIRE_JUMP_C` above its recent level, or above `FIRE_ABS_C`;
- `waste.sensor_stuck`: identical fill readings for `STUCK_AFTER` (a real level wobbles),
  where the bin's learnt readings say such a run is implausible (`shared.ml.warmup`);
- `waste.sensor_jumps`: impossible jumps (rejected glitches) on `JUMP_SHARE` of a day's
  readings, `MIN_JUMPS` at least;
- `waste.sensor_silent`: a reading after a gap longer than `SILENT_PERIODS` reporting periods.
  Silence is only visible when the bin speaks again, so that episode's start and end are sent
  together; the alerts service's "device silent" rule covers a bin that never comes back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.ml.calendar import TOWN, TownCalendar
from shared.ml.cells import Ewm
from shared.ml.registry import ModelSpec, describe
from shared.ml.timed import build_regressor
from shared.ml.warmup import WarmUp, implausibly_steady
from shared.ml.weekly import WeeklyProfile
from shared.runtime.cadence import Cadence, upgrade_timing
from shared.runtime.checkpoints import Upgradable
from shared.runtime.episodes import (
    EpisodeTracker,
    alert,
    row_of,
    watch_silence,
)
from shared.runtime.processor import Effects
from shared.schemas import Reading, Severity
from shared.topics import Domain

FILL, TEMPERATURE = "fill_pct", "temperature_c"
DEFAULT_FULL_PCT = 80.0
# 0.3: a new reading moves the level by 30%: noise (1.5 points) shrinks to about 0.6 points,
# while a change of level is followed within a few readings.
LEVEL_ALPHA = 0.3
# About eight times the sensor noise: never noise, always a glitch, a collection or a dump.
JUMP_PCT = 12.0
COLLECTION_DROP_PCT = 15.0
# A bin this full cannot show its fill rate (the sensor saturates, bags pile up beside it).
SATURATED_PCT = 95.0
HORIZON = timedelta(days=7)
HALF_HOUR = timedelta(minutes=30)
HOUR = timedelta(hours=1)
# Relative typical error of a time-to-full prediction before the bin has crossed the threshold
# three times (its own errors are learnt then).
PRIOR_REL_ERROR = 0.15
# Two hours of readings to judge the filling over; an abnormal rise must be 15 points (and as
# much again as expected) above what the fill profile expected, after a week of profile.
FILL_WINDOW = timedelta(hours=2)
ABNORMAL_EXCESS_PCT = 15.0
MIN_EXCESS_PCT = 6.0
RATE_PROBATION = 7 * 24
# The longest gap between two readings a rate is learnt across (spread over its hours): a bin
# reporting every 4 or 6 hours still learns; a longer silence may hide a collection.
RATE_SPAN_HOURS = 6
FIRE_ABS_C = 60.0
FIRE_JUMP_C = 15.0
# Durations, in readings of each bin's own reporting interval (shared/runtime/cadence.py).
STUCK_AFTER = timedelta(hours=2)
# How long each kind's flags must last to open an episode, and normal readings to close it:
# abnormal filling over half an hour; a fire, a stuck or a jumpy sensor from their first reading.
EPISODE_DURATIONS = {
    "waste.abnormal_fill": (timedelta(minutes=30), HOUR),
    "waste.fire_risk": (timedelta(0), HOUR),
    "waste.sensor_stuck": (timedelta(0), timedelta(0)),
    "waste.sensor_jumps": (timedelta(0), timedelta(0)),
}
# Glitches on one reading in sixteen over a day (six a day at 15 minutes) is a failing sensor,
# not bad luck; and fewer than three a day never is, however slowly the bin reports.
JUMP_SHARE = 1 / 16
MIN_JUMPS = 3
# The fill-rate model: points per hour by (weekday, hour of the local day).
FILL_MODEL = ModelSpec(path="shared.ml.weekly.WeeklyProfile", params={"slot_minutes": 60})


@dataclass(frozen=True, slots=True)
class LevelRow:
    device_id: str
    ts: datetime
    raw: float
    level: float
    # None, or what the raw reading was: "glitch", "collection", "jump", "stuck"
    flag: str | None


@dataclass(frozen=True, slots=True)
class CollectionRow:
    device_id: str
    ts: datetime
    level_before: float
    level_after: float


@dataclass(frozen=True, slots=True)
class BinRow:
    """The bin now: upserted at every reading (the last one of a batch is kept)."""

    device_id: str
    ts: datetime
    level: float
    rate_pct_h: float
    full_at: datetime | None
    uncertainty_h: float | None
    crossed_at: datetime | None
    last_collection: datetime | None
    temperature_c: float | None
    # Expected fill rate (points per hour) by weekday (Monday first) and hour; refreshed daily.
    rates: list[list[float | None]] | None


def _trackers() -> dict[str, EpisodeTracker]:
    return {
        kind: EpisodeTracker(kind, open_after=open_after, close_after=close_after)
        for kind, (open_after, close_after) in EPISODE_DURATIONS.items()
    }


@dataclass
class BinState(Upgradable):
    # Regressor-style (learn_one(x, y), predict_one(x), the hour in x["ts"]): FILL_MODEL's.
    rates: Any = field(default_factory=lambda: WeeklyProfile(slot_minutes=60))
    rate_samples: int = 0
    level: float | None = None
    level_ts: datetime | None = None
    pending: tuple[datetime, float] | None = None
    last_collection: datetime | None = None
    # The level the last collection dropped the bin from.
    collected_from: float | None = None
    crossed_at: datetime | None = None
    bucket: datetime | None = None
    bucket_sum: float = 0.0
    bucket_n: int = 0
    prev_bucket: tuple[datetime, float] | None = None
    window: deque[tuple[datetime, float]] = field(default_factory=deque)
    last_raw: float | None = None
    repeats: int = 0
    jumps: deque[datetime] = field(default_factory=deque)
    temp_level: Ewm = field(default_factory=lambda: Ewm(alpha=0.1))
    temperature: float | None = None
    cadence: Cadence = field(default_factory=Cadence)
    # Which fill readings repeat normally, by day type and hour (the stuck rule's judge).
    warm: WarmUp = field(default_factory=WarmUp)
    predictions: list[tuple[datetime, datetime]] = field(default_factory=list)
    rel_error: Ewm = field(default_factory=lambda: Ewm(alpha=0.1))
    full_at: datetime | None = None
    uncertainty_h: float | None = None
    rates_day: date | None = None
    predicted_hour: datetime | None = None
    trackers: dict[str, EpisodeTracker] = field(default_factory=_trackers)

    def _upgrade(self, old: dict[str, Any]) -> None:
        upgrade_timing(self, old)
        for kind, (open_after, close_after) in EPISODE_DURATIONS.items():
            if kind in self.trackers:
                self.trackers[kind].retime(open_after=open_after, close_after=close_after)


def rate_at(profile: Any, ts: datetime) -> float:
    """Expected fill rate (points per hour) at `ts`.

    A rate learnt at hour boundary H is the mean rate over [H - 30 min, H + 30 min): hence
    the half-hour shift, so that each instant reads the cell it was measured in.
    """
    return float(profile.predict_one({"ts": ts + HALF_HOUR}) or 0.0)


def _hourly(profile: Any, start: datetime, count: int) -> Iterator[float]:
    """The model's values for `count` consecutive hours from `start`, lazily.

    A `WeeklyProfile` has a fast path (no datetime per hour); any other model is asked hour by
    hour.
    """
    if isinstance(profile, WeeklyProfile):
        yield from profile.iter_range(start, count)
        return
    for i in range(count):
        yield float(profile.predict_one({"ts": start + i * HOUR}) or 0.0)


def rate_table(
    profile: Any, ts: datetime, calendar: TownCalendar = TOWN
) -> list[list[float | None]]:
    """Expected fill rate by weekday (Monday first) and local hour.

    A `WeeklyProfile` gives its cells (public holidays aside); any other model is asked for
    each hour of the local week holding `ts`.
    """
    if isinstance(profile, WeeklyProfile):
        return profile.table()
    local = ts.astimezone(calendar.tz)
    monday = (local - timedelta(days=local.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return [
        [
            float(profile.predict_one({"ts": monday + timedelta(days=d, hours=h)}) or 0.0)
            for h in range(24)
        ]
        for d in range(7)
    ]


def _next_half_hour(ts: datetime) -> datetime:
    """The first hh:30 after `ts` (the boundaries of the rate cells, see `rate_at`)."""
    epoch = ts.timestamp()
    return datetime.fromtimestamp((epoch - 1800) // 3600 * 3600 + 5400, UTC)


def expected_increase(profile: Any, start: datetime, end: datetime) -> float:
    """Points the bin is expected to gain over [start, end]."""
    total, t = 0.0, start
    while t < end:
        nxt = min(end, _next_half_hour(t))
        total += rate_at(profile, t) * ((nxt - t) / HOUR)
        t = nxt
    return total


def time_to_reach(
    profile: Any,
    *,
    level: float,
    target: float,
    start: datetime,
    horizon: timedelta = HORIZON,
) -> datetime | None:
    """When the expected filling takes `level` to `target`, or None beyond `horizon`.

    >>> from datetime import UTC
    >>> p = WeeklyProfile(slot_minutes=60)
    >>> t0 = datetime(2026, 3, 2, tzinfo=UTC)
    >>> for h in range(24 * 14):
    ...     p.learn_one({"ts": t0 + timedelta(hours=h)}, 2.0)
    >>> t = t0 + timedelta(days=14, minutes=10)
    >>> time_to_reach(p, level=50.0, target=80.0, start=t) - t
    datetime.timedelta(seconds=54000)
    """
    if level >= target:
        return start
    need = target - level
    # The part cell up to the next hh:30, then whole cells: one look-up per hour ahead.
    boundary = _next_half_hour(start)
    rate = rate_at(profile, start)
    gain = rate * ((boundary - start) / HOUR)
    if gain >= need > 0:
        return start + (need / rate) * HOUR
    need -= gain
    hours = int(horizon / HOUR)
    for i, rate in enumerate(_hourly(profile, boundary + HALF_HOUR, hours)):
        if rate >= need > 0:
            return boundary + (i + need / rate) * HOUR
        need -= rate
    return None


class WasteProcessor:
    """The runtime's `DeviceProcessor` for waste bins."""

    model_version = "waste-bin/3"

    def __init__(
        self,
        *,
        full_pct: float = DEFAULT_FULL_PCT,
        calendar: TownCalendar = TOWN,
        fill_model: ModelSpec = FILL_MODEL,
    ) -> None:
        self.full_pct = full_pct
        self.calendar = calendar
        self.fill_model = fill_model
        calendar.preload()
        # Models learnt in another calendar, or another model (class, version, parameters), do
        # not fit this one: the runtime discards their checkpoints and starts afresh.
        model = describe(self._rates())
        # What the public register names as running (services/waste/domain/algorithms.py).
        self.model_names = {"fill_rate": model}
        self.model_version = (
            f"{type(self).model_version}:{model}@{calendar.timezone}/{calendar.country}"
        )

    def _rates(self) -> Any:
        return build_regressor(self.fill_model, calendar=self.calendar)

    def new_state(self, device_id: str) -> BinState:
        return BinState(rates=self._rates(), warm=WarmUp(calendar=self.calendar))

    @staticmethod
    def learning_until(state: BinState) -> datetime | None:
        """While the bin's warm-up lasts, roughly when it will be done (else None)."""
        last = state.cadence.last_ts
        return None if last is None else state.warm.learning_until(last)

    def process(self, state: BinState, *, device_id: str, readings: list[Reading]) -> Effects:
        out = Effects()
        state.warm.calendar = self.calendar  # a state restored from an older checkpoint
        for r in readings:
            self._silence(state, device_id, r.ts, out)
            if r.metric == FILL:
                self._fill(state, device_id, r.ts, r.value, out)
            elif r.metric == TEMPERATURE:
                self._temperature(state, device_id, r.ts, r.value, out)
        return out

    # ---- fill level -----------------------------------------------------------------------------

    def _fill(self, s: BinState, device_id: str, ts: datetime, raw: float, out: Effects) -> None:
        if s.level is None or s.level_ts is None:
            s.level, s.level_ts = raw, ts
            out.rows.append(LevelRow(device_id, ts, raw, raw, None))
            self._accept(s, ts, raw)
            self._refresh(s, device_id, ts, out)
            return
        pred = min(100.0, s.level + expected_increase(s.rates, s.level_ts, ts))
        repeated = raw == s.last_raw and 0.5 < raw < 99.5
        s.repeats = s.repeats + 1 if repeated else 0
        s.last_raw = raw
        stuck = implausibly_steady(
            s.warm, ts, run=s.repeats + 1, needed=s.cadence.readings(STUCK_AFTER)
        )
        if not stuck:
            s.warm.learn_one(ts, repeated=repeated)
        flag: str | None = None
        accepted = False
        if stuck:
            # A stuck sensor says nothing: the level goes on as the profile expects.
            s.level, flag = pred, "stuck"
            if s.pending is not None:
                out.rows.append(LevelRow(device_id, s.pending[0], s.pending[1], pred, "glitch"))
                s.pending = None
        elif s.pending is not None:
            p_ts, p_raw = s.pending
            s.pending = None
            side = p_raw - pred
            if (raw - pred) * side > 0 and abs(raw - pred) > JUMP_PCT / 2:
                collected = p_raw < pred - COLLECTION_DROP_PCT
                out.rows.append(
                    LevelRow(device_id, p_ts, p_raw, p_raw, "collection" if collected else "jump")
                )
                if collected:
                    self._collected(s, device_id, p_ts, before=pred, after=p_raw, out=out)
                s.level, accepted = raw, True
            else:
                out.rows.append(LevelRow(device_id, p_ts, p_raw, pred, "glitch"))
                s.jumps.append(p_ts)
        if flag is None and not accepted:
            if abs(raw - pred) > JUMP_PCT:
                s.pending, s.level = (ts, raw), pred
            else:
                s.level, accepted = pred + LEVEL_ALPHA * (raw - pred), True
        s.level = min(100.0, max(0.0, s.level))
        s.level_ts = ts
        if s.pending is None or s.pending[0] != ts:
            out.rows.append(LevelRow(device_id, ts, raw, s.level, flag))
        if accepted:
            self._accept(s, ts, raw)
        self._fill_anomalies(s, device_id, ts, stuck, out)
        if s.crossed_at is None and s.level >= self.full_pct:
            self._crossed(s, ts)
        self._refresh(s, device_id, ts, out)

    def _collected(
        self,
        s: BinState,
        device_id: str,
        ts: datetime,
        *,
        before: float,
        after: float,
        out: Effects,
    ) -> None:
        out.rows.append(CollectionRow(device_id, ts, round(before, 2), after))
        s.last_collection, s.crossed_at = ts, None
        s.collected_from = before
        # Predictions of a cycle cut short by the truck can never be checked.
        s.predictions.clear()
        s.predicted_hour = None
        s.window.clear()
        s.prev_bucket, s.bucket, s.bucket_sum, s.bucket_n = None, None, 0.0, 0

    def _crossed(self, s: BinState, ts: datetime) -> None:
        s.crossed_at = ts
        for issued, predicted in s.predictions:
            ahead = (ts - issued) / HOUR
            if ahead >= 1.0:
                s.rel_error.update(abs((predicted - ts) / HOUR) / ahead)
        s.predictions.clear()

    def _accept(self, s: BinState, ts: datetime, raw: float) -> None:
        """Add an accepted reading to its hourly bucket; learn rates when an hour is done.

        A rate is the rise between two hours' mean levels, per hour between them: consecutive
        hours for a bin reporting every 15 or 30 minutes; for one reporting hourly or every few
        hours, the rise is spread evenly over the hours in between (each hour's slot learns the
        mean rate). Hours with one reading count: an hourly bin has only those."""
        bucket = _bucket(ts)
        if bucket == s.bucket:
            s.bucket_sum += raw
            s.bucket_n += 1
            return
        if s.bucket is not None and s.bucket_n >= 1:
            mean = s.bucket_sum / s.bucket_n
            prev = s.prev_bucket
            calm = not any(
                s.trackers[k].active for k in ("waste.abnormal_fill", "waste.sensor_stuck")
            )
            hours = round((s.bucket - prev[0]) / HOUR) if prev is not None else 0
            if (
                prev is not None
                and 1 <= hours <= RATE_SPAN_HOURS
                and calm
                and max(prev[1], mean) < SATURATED_PCT
            ):
                per_hour = (mean - prev[1]) / hours
                for k in range(hours):
                    s.rates.learn_one({"ts": prev[0] + (k + 1) * HOUR}, per_hour)
                    s.rate_samples += 1
            s.prev_bucket = (s.bucket, mean)
        else:
            s.prev_bucket = None
        s.bucket, s.bucket_sum, s.bucket_n = bucket, raw, 1

    def _fill_anomalies(
        self, s: BinState, device_id: str, ts: datetime, stuck: bool, out: Effects
    ) -> None:
        assert s.level is not None
        s.window.append((ts, s.level))
        while s.window and s.window[0][0] < ts - FILL_WINDOW:
            s.window.popleft()
        first_ts, first_level = s.window[0]
        expected = expected_increase(s.rates, first_ts, ts)
        excess = (s.level - first_level) - expected
        # Near the top a bin cannot rise 15 points: half its headroom is as telling.
        needed = max(MIN_EXCESS_PCT, min(ABNORMAL_EXCESS_PCT, 0.5 * (100.0 - first_level)))
        abnormal = (
            s.rate_samples >= RATE_PROBATION
            and ts - first_ts >= FILL_WINDOW * 0.75
            and excess > max(needed, expected)
            and not _came_back(s, since=first_ts)
        )
        fill_exp = {
            "observed_rise_pct": round(s.level - first_level, 2),
            "expected_rise_pct": round(expected, 2),
            "window_h": round((ts - first_ts) / HOUR, 2),
            "level_pct": round(s.level, 1),
        }
        self._track(
            s,
            device_id,
            ts,
            "waste.abnormal_fill",
            abnormal,
            Severity.WARNING,
            excess,
            fill_exp,
            out,
        )
        self._track(
            s,
            device_id,
            ts,
            "waste.sensor_stuck",
            stuck,
            Severity.WARNING,
            float(s.repeats + 1),
            {"repeated_value": s.last_raw, "readings": s.repeats + 1},
            out,
        )
        while s.jumps and s.jumps[0] <= ts - timedelta(days=1):
            s.jumps.popleft()
        jumps_needed = max(MIN_JUMPS, round(JUMP_SHARE * s.cadence.readings(timedelta(days=1))))
        self._track(
            s,
            device_id,
            ts,
            "waste.sensor_jumps",
            len(s.jumps) >= jumps_needed,
            Severity.INFO,
            float(len(s.jumps)),
            {"rejected_jumps_24h": len(s.jumps)},
            out,
        )

    # ---- temperature ----------------------------------------------------------------------------

    def _temperature(
        self, s: BinState, device_id: str, ts: datetime, value: float, out: Effects
    ) -> None:
        s.temperature = value
        base = s.temp_level.mean if s.temp_level.n >= 4 else None
        rise = value - base if base is not None else 0.0
        fire = value >= FIRE_ABS_C or rise >= FIRE_JUMP_C
        explanation = {
            "temperature_c": value,
            "usual_c": None if base is None else round(base, 1),
            "rise_c": round(rise, 1),
            "threshold_c": FIRE_ABS_C,
        }
        self._track(
            s, device_id, ts, "waste.fire_risk", fire, Severity.CRITICAL, value, explanation, out
        )
        if not s.trackers["waste.fire_risk"].active and not fire:
            s.temp_level.update(value)

    # ---- silence --------------------------------------------------------------------------------

    def _silence(self, s: BinState, device_id: str, ts: datetime, out: Effects) -> None:
        watch_silence(
            device_id=device_id,
            domain=Domain.WASTE,
            kind="waste.sensor_silent",
            ts=ts,
            cadence=s.cadence,
            events=out.events,
            rows=out.rows,
        )

    # ---- episodes and the bin's summary ---------------------------------------------------------

    def _track(
        self,
        s: BinState,
        device_id: str,
        ts: datetime,
        kind: str,
        flagged: bool,
        severity: Severity,
        peak: float,
        explanation: Mapping[str, object],
        out: Effects,
    ) -> None:
        tracker = s.trackers[kind]
        was_active = tracker.active
        phase = tracker.update(
            ts,
            flagged=flagged,
            interval=s.cadence.interval,
            severity=severity,
            peak=peak,
            explanation=dict(explanation),
        )
        ep = tracker.last
        if ep is None or not (phase or (was_active and flagged)):
            return
        out.rows.append(row_of(device_id, ep))
        if phase is None:
            return
        what = kind.removeprefix("waste.").replace("_", " ")
        message = (
            f"{what}: {_describe(explanation)}"
            if phase == "start"
            else f"{what} over after {ep.readings} readings"
        )
        out.events.append(
            alert(
                device_id=device_id,
                domain=Domain.WASTE,
                ep=ep,
                phase=phase,
                ts=ts,
                explanation={**explanation, "message": message},
            )
        )

    def _refresh(self, s: BinState, device_id: str, ts: datetime, out: Effects) -> None:
        assert s.level is not None
        if s.level >= self.full_pct:
            s.full_at, s.uncertainty_h = s.crossed_at or ts, 0.0
        elif s.predicted_hour != _bucket(ts):
            s.predicted_hour = _bucket(ts)
            # Integrating a week ahead costs ~170 profile look-ups: once an hour is plenty.
            s.full_at = time_to_reach(s.rates, level=s.level, target=self.full_pct, start=ts)
            if s.full_at is None:
                s.uncertainty_h = None
            else:
                rel = s.rel_error.mean if s.rel_error.n >= 3 else PRIOR_REL_ERROR
                s.uncertainty_h = max(0.5, rel * (s.full_at - ts) / HOUR)
                s.predictions.append((ts, s.full_at))
        rates = None
        day = ts.astimezone(UTC).date()
        if s.rates_day != day:
            s.rates_day = day
            rates = [
                [None if v is None else round(v, 3) for v in row]
                for row in rate_table(s.rates, ts, self.calendar)
            ]
        out.rows.append(
            BinRow(
                device_id,
                ts,
                round(s.level, 2),
                round(max(0.0, rate_at(s.rates, ts)), 3),
                s.full_at,
                s.uncertainty_h,
                s.crossed_at,
                s.last_collection,
                s.temperature,
                rates,
            )
        )


def _came_back(s: BinState, *, since: datetime) -> bool:
    """Whether the rise judged from `since` is the level coming back to where a "collection"
    just before dropped it from: that drop was a run of sensor glitches (two readings of 0 in a
    row), not a truck followed by a dump as high as before. (A dump refilling a bin to its level
    before a real collection, within two hours, is not told apart: the rare price of not crying
    wolf.)"""
    return (
        s.last_collection is not None
        and s.collected_from is not None
        and since - s.last_collection <= FILL_WINDOW
        and s.level is not None
        and abs(s.level - s.collected_from) <= JUMP_PCT / 2
    )


def _bucket(ts: datetime) -> datetime:
    return (ts - timedelta(seconds=1)).replace(minute=0, second=0, microsecond=0)


def _describe(explanation: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in explanation.items() if v is not None)
