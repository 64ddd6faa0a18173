"""Anomaly episodes: per-reading flags become one alert event at the start and one at the end.

How long a flag must last to open an episode, and normal readings to close it, are durations:
each device's learnt reporting interval (`shared.runtime.cadence`) turns them into readings.

A domain service keeps one `EpisodeTracker` per kind of anomaly and device (in the device's
state, so it is checkpointed with the models) and feeds it each reading's verdict. The events'
ids derive from the episode (`AlertEvent.make_id`), so a replay after a crash re-emits the same
ids and consumers deduplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.runtime.cadence import DEFAULT_INTERVAL, Cadence, readings_for
from shared.runtime.checkpoints import Upgradable
from shared.schemas import AlertEvent, Severity
from shared.topics import Domain

Phase = Literal["start", "end"]


@dataclass
class Episode(Upgradable):
    kind: str
    started_at: datetime
    severity: Severity
    peak: float = 0.0
    readings: int = 0
    ended_at: datetime | None = None
    # The explanation of the reading that opened it (what an operator reads first).
    explanation: dict[str, Any] = field(default_factory=dict)
    # Sums over its flagged readings of what the domain counts (a meter's kWh observed and
    # expected: what the episode cost).
    totals: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EpisodeRow:
    """An episode as stored: upserted at each change, `ended_at` None while it lasts."""

    device_id: str
    kind: str
    started_at: datetime
    ended_at: datetime | None
    severity: str
    peak: float
    readings: int
    explanation: dict[str, Any]


@dataclass
class EpisodeTracker(Upgradable):
    """Opens an episode once flagged readings in a row have lasted `open_after` (and are
    `open_readings` at least), or at once on a reading that says so (`at_once`: far out),
    closes it once unflagged ones have lasted `close_after`: durations, counted in readings of
    the device's reporting interval (`shared.runtime.cadence`), given with each reading.

    One tracker may follow several kinds of anomaly (a meter's: high, low, stuck...): each
    reading says its own `kind`, and an episode is of the kind its first reading showed.

    Examples
    --------
    >>> from datetime import UTC, timedelta
    >>> t0, q = datetime(2026, 3, 2, tzinfo=UTC), timedelta(minutes=15)
    >>> tr = EpisodeTracker("waste.fire_risk", open_after=2 * q, close_after=2 * q)
    >>> flags = [False, True, True, True, False, True, False, False, False]
    >>> [tr.update(t0 + i * q, flagged=f, interval=q) for i, f in enumerate(flags)]
    [None, None, 'start', None, None, None, None, 'end', None]
    >>> tr.last is not None and tr.last.started_at == t0 + q
    True

    The same half hour is one reading of an hourly device:

    >>> h = timedelta(hours=1)
    >>> [tr.update(t0 + i * h, flagged=f, interval=h) for i, f in enumerate([True, False])]
    ['start', 'end']

    Asked for two readings at least, an hourly device needs two, unless one is far out:

    >>> tr = EpisodeTracker("energy", open_after=2 * q, close_after=2 * q, open_readings=2)
    >>> [tr.update(t0 + i * h, flagged=True, interval=h, kind=k, add={"kwh": 1.5})
    ...  for i, k in enumerate(["energy.low", "energy.high"])]
    [None, 'start']
    >>> tr.last is not None and (tr.last.kind, tr.last.readings, tr.last.totals)
    ('energy.low', 2, {'kwh': 3.0})
    >>> tr = EpisodeTracker("energy", open_readings=2)
    >>> tr.update(t0, flagged=True, interval=h, at_once=True)
    'start'
    """

    kind: str
    open_after: timedelta = timedelta(minutes=45)
    close_after: timedelta = timedelta(hours=1)
    streak: int = 0
    streak_since: datetime | None = None
    streak_peak: float = 0.0
    normal_streak: int = 0
    # Flagged readings an episode needs at least, whatever the durations say (one flagged
    # reading of an hourly meter is its noise, not yet a fault).
    open_readings: int = 1
    # The kind of the streak's first reading, and its sums (`Episode.totals`), until it opens.
    streak_kind: str | None = None
    streak_totals: dict[str, float] = field(default_factory=dict)
    episode: Episode | None = None
    # The episode the latest update opened, changed or closed.
    last: Episode | None = None

    def update(
        self,
        ts: datetime,
        *,
        flagged: bool,
        interval: timedelta = DEFAULT_INTERVAL,
        severity: Severity = Severity.WARNING,
        peak: float = 0.0,
        explanation: dict[str, Any] | None = None,
        kind: str | None = None,
        at_once: bool = False,
        add: Mapping[str, float] | None = None,
    ) -> Phase | None:
        """Feed one reading's verdict (`interval`: the device's reporting interval; `kind`:
        the reading's kind of anomaly, the tracker's own by default; `at_once`: a flagged
        reading that opens an episode by itself; `add`: its share of the episode's `totals`);
        "start" or "end" when an episode opens or closes."""
        ep = self.episode
        if ep is None:
            if not flagged:
                self._reset_streak()
                return None
            if self.streak == 0:
                self.streak_since = ts
                self.streak_kind = kind
            self.streak += 1
            self.streak_peak = max(self.streak_peak, peak)
            _add(self.streak_totals, add)
            needed = max(self.open_readings, readings_for(self.open_after, interval))
            if self.streak < needed and not at_once:
                return None
            assert self.streak_since is not None
            ep = self.episode = self.last = Episode(
                self.streak_kind or self.kind,
                self.streak_since,
                severity,
                self.streak_peak,
                self.streak,
                explanation=dict(explanation or {}),
                totals=self.streak_totals,
            )
            self.streak_totals = {}
            self._reset_streak()
            self.normal_streak = 0
            return "start"
        self.last = ep
        if flagged:
            self.normal_streak = 0
            ep.readings += 1
            ep.peak = max(ep.peak, peak)
            _add(ep.totals, add)
            if severity.rank > ep.severity.rank:
                ep.severity = severity
            return None
        self.normal_streak += 1
        if self.normal_streak < readings_for(self.close_after, interval):
            return None
        ep.ended_at = ts
        self.episode = None
        return "end"

    def opening_kind(self, kind: str) -> str:
        """The kind an episode opened by a reading of `kind` would have: its streak's first
        reading's (a reading's severity at the opening is judged for that kind)."""
        return self.streak_kind or kind if self.episode is None else kind

    def _reset_streak(self) -> None:
        self.streak, self.streak_since, self.streak_peak = 0, None, 0.0
        self.streak_kind = None
        self.streak_totals.clear()

    def _upgrade(self, old: dict[str, Any]) -> None:
        # Checkpoints written before durations held counts of 15-minute readings; the
        # processors set their current durations again after loading (`retime`).
        for name in ("open_after", "close_after"):
            if isinstance(old.get(name), int):
                setattr(self, name, old[name] * DEFAULT_INTERVAL)

    def retime(
        self, *, open_after: timedelta, close_after: timedelta, open_readings: int = 1
    ) -> None:
        """Adopt the processor's durations (a restored tracker keeps those it was saved with)."""
        self.open_after, self.close_after = open_after, close_after
        self.open_readings = open_readings

    @property
    def active(self) -> bool:
        return self.episode is not None


def _add(totals: dict[str, float], add: Mapping[str, float] | None) -> None:
    for name, value in (add or {}).items():
        totals[name] = totals.get(name, 0.0) + value


def row_of(device_id: str, ep: Episode) -> EpisodeRow:
    return EpisodeRow(
        device_id,
        ep.kind,
        ep.started_at,
        ep.ended_at,
        ep.severity.value,
        ep.peak,
        ep.readings,
        ep.explanation,
    )


def alert(
    *,
    device_id: str,
    domain: Domain,
    ep: Episode,
    phase: Phase,
    ts: datetime,
    explanation: dict[str, Any],
) -> AlertEvent:
    """The alert event of an episode's start or end (its id is derived from the episode)."""
    return AlertEvent(
        event_id=AlertEvent.make_id(
            device_id=device_id, kind=ep.kind, episode_start=ep.started_at, phase=phase
        ),
        device_id=device_id,
        domain=domain,
        kind=ep.kind,
        phase=phase,
        severity=ep.severity,
        episode_start=ep.started_at,
        ts=ts,
        explanation=explanation,
    )


# A device is silent after this many of its reporting intervals, and never after less than this.
SILENT_PERIODS = 4
MIN_SILENCE = timedelta(hours=1)


def watch_silence(
    *,
    device_id: str,
    domain: Domain,
    kind: str,
    ts: datetime,
    cadence: Cadence,
    events: list[AlertEvent],
    rows: list[Any],
) -> None:
    """Notice, on the first reading after it, a gap longer than the device's usual interval;
    `cadence` learns the reading's time.

    Silence cannot be seen from readings that do not come: the episode's start and end are
    emitted together when the device speaks again (the alerts service's "silent" rule covers a
    device that never does).
    """
    known, last_ts = cadence.known, cadence.last_ts
    interval = cadence.interval
    gap = cadence.observe(ts)
    if gap is None or last_ts is None or not known:
        return
    if gap > max(SILENT_PERIODS * interval, MIN_SILENCE):
        hours = gap / timedelta(hours=1)
        ep = Episode(kind, last_ts, Severity.WARNING, hours, 1, ts)
        ep.explanation = {
            "silent_h": round(hours, 2),
            "expected_period_min": round(interval / timedelta(minutes=1), 1),
            "message": f"nothing heard for {hours:.1f} h",
        }
        for phase in ("start", "end"):
            events.append(
                alert(
                    device_id=device_id,
                    domain=domain,
                    ep=ep,
                    phase=phase,
                    ts=ts,
                    explanation=ep.explanation,
                )
            )
        rows.append(row_of(device_id, ep))
