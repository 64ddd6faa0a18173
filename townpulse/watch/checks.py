"""The early warnings' rules: observations in, the conditions that hold out. No I/O here.

A condition is identified by what it is about (`subject`, the alert's device id, e.g.
`disk-kafka`) and its `kind` (e.g. `platform.disk_high`); `transitions` turns the conditions of
one check, against those already open, into the episode events to send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.schemas import AlertEvent, Severity
from shared.topics import PLATFORM
from townpulse.watch.settings import WatchSettings

DISK = "platform.disk_high"
BACKUP = "platform.backup_stale"
CERT = "platform.certificate_expiring"
RESTARTS = "platform.restarts_high"


@dataclass(frozen=True)
class Condition:
    subject: str
    kind: str
    severity: Severity
    message: str
    expected: float | None = None
    observed: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.subject}|{self.kind}"


@dataclass(frozen=True)
class Open:
    """A condition that holds, as last announced: when it began and at which severity."""

    episode_start: datetime
    severity: Severity
    subject: str
    kind: str


# ---- disk ----------------------------------------------------------------------------------


def growth_rate(samples: Sequence[tuple[datetime, int]], *, min_span: timedelta) -> float | None:
    """Bytes per second the disk fills at, from the oldest to the newest sample.

    >>> t = datetime(2026, 1, 1)
    >>> growth_rate([(t, 100), (t + timedelta(hours=2), 7300)], min_span=timedelta(hours=1))
    1.0
    >>> growth_rate([(t, 100), (t + timedelta(minutes=5), 900)], min_span=timedelta(hours=1))
    """
    if len(samples) < 2:
        return None
    (t0, used0), (t1, used1) = samples[0], samples[-1]
    span = (t1 - t0).total_seconds()
    if span <= 0 or t1 - t0 < min_span:
        return None
    return (used1 - used0) / span


def days_left(*, free: int, rate: float | None) -> float | None:
    """Days until `free` bytes are gone at `rate` bytes/s; None when the disk is not filling.

    >>> days_left(free=86_400 * 10, rate=1.0)
    10.0
    >>> days_left(free=1000, rate=-3.0)
    """
    if rate is None or rate <= 0:
        return None
    return free / rate / 86_400


def disk(
    *, name: str, path: str, used: int, total: int, rate: float | None, s: WatchSettings
) -> Condition | None:
    """The filesystem under a data directory: too full, or full too soon."""
    pct = 100.0 * used / total if total else 0.0
    left = days_left(free=total - used, rate=rate)
    soon = left is not None and left <= s.disk_warn_days
    if pct < s.disk_warn_pct and not soon:
        return None
    critical = pct >= s.disk_critical_pct or (left is not None and left <= s.disk_critical_days)
    when = f"; full in {left:.1f} days at the current rate" if left is not None else ""
    return Condition(
        subject=f"disk-{name}",
        kind=DISK,
        severity=Severity.CRITICAL if critical else Severity.WARNING,
        message=f"the disk of {name}'s data ({path}) is {pct:.1f} % full{when}",
        expected=s.disk_warn_pct,
        observed=round(pct, 2),
        extra={"path": path, "days_left": None if left is None else round(left, 2)},
    )


# ---- backups -------------------------------------------------------------------------------


def backup(
    *,
    last_ok_at: datetime | None,
    last_run: Mapping[str, Any] | None,
    first_run_at: datetime,
    now: datetime,
    s: WatchSettings,
) -> Condition | None:
    """The last successful backup is too old, or none was ever made after the grace period.

    >>> s = WatchSettings()
    >>> now = datetime(2026, 1, 3, 12)
    >>> backup(last_ok_at=now - timedelta(hours=2), last_run=None, first_run_at=now, now=now, s=s)
    >>> c = backup(last_ok_at=now - timedelta(hours=30), last_run=None, first_run_at=now, now=now,
    ...            s=s)
    >>> c.severity.value, c.observed
    ('warning', 30.0)
    """
    since = last_ok_at if last_ok_at is not None else first_run_at
    age_h = (now - since).total_seconds() / 3600
    limit = s.backup_max_age_h if last_ok_at is not None else s.backup_grace_h
    if age_h <= limit:
        return None
    if last_ok_at is None:
        message = f"no successful backup since the stack started, {age_h:.0f} h ago"
    else:
        message = f"the last successful backup finished {age_h:.0f} h ago"
    if last_run is not None and not last_run.get("ok", False):
        message += f"; the last run, at {last_run.get('finished_at')}, failed"
    return Condition(
        subject="backup",
        kind=BACKUP,
        severity=Severity.CRITICAL if age_h > s.backup_critical_age_h else Severity.WARNING,
        message=message,
        expected=s.backup_max_age_h,
        observed=round(age_h, 2),
        extra={"last_ok_at": None if last_ok_at is None else last_ok_at.isoformat()},
    )


# ---- certificates --------------------------------------------------------------------------


def certificate(
    *, name: str, path: str, not_after: datetime, now: datetime, s: WatchSettings
) -> Condition | None:
    """A certificate the stack uses ends within `cert_warn_days` (or has ended)."""
    left = (not_after - now).total_seconds() / 86_400
    if left > s.cert_warn_days:
        return None
    ended = "has expired" if left <= 0 else f"expires in {left:.1f} days"
    return Condition(
        subject=f"cert-{name}",
        kind=CERT,
        severity=Severity.CRITICAL if left <= s.cert_critical_days else Severity.WARNING,
        message=f"the certificate {path} {ended} ({not_after.isoformat()})",
        expected=s.cert_warn_days,
        observed=round(left, 2),
        extra={"path": path, "not_after": not_after.isoformat()},
    )


# ---- restarts ------------------------------------------------------------------------------


def restarts_within(
    samples: Sequence[tuple[datetime, int]], *, now: datetime, window: timedelta
) -> int:
    """Restarts counted in `window` before `now`, from samples of a growing restart counter.

    The counter starts again from 0 when its keeper does (a new `make up`): a drop is a reset.

    >>> t = datetime(2026, 1, 1, 12)
    >>> h = timedelta(hours=1)
    >>> restarts_within([(t - 2 * h, 3), (t - h, 4), (t, 9)], now=t, window=h)
    5
    >>> restarts_within([(t - timedelta(minutes=30), 7), (t, 2)], now=t, window=h)
    2
    """
    recent = [(at, n) for at, n in samples if at > now - window]
    before = [(at, n) for at, n in samples if at <= now - window]
    base = before[-1:] + recent
    if not base:
        return 0
    total, previous = 0, base[0][1]
    for _, n in base[1:]:
        total += n - previous if n >= previous else n
        previous = n
    return total


def restarts(*, name: str, count: int, s: WatchSettings) -> Condition | None:
    if count <= s.restarts_per_hour:
        return None
    return Condition(
        subject=f"service-{name}",
        kind=RESTARTS,
        severity=Severity.WARNING,
        message=f"{name} restarted {count} times in the last hour",
        expected=s.restarts_per_hour,
        observed=count,
    )


# ---- episodes ------------------------------------------------------------------------------


def transitions(
    open_: Mapping[str, Open], found: Sequence[Condition], *, now: datetime
) -> tuple[list[AlertEvent], dict[str, Open]]:
    """The events that move the open conditions to those found now, and the new open set.

    A condition that begins sends `start`; one that holds sends nothing, unless its severity
    rose (another `start` of the same episode: the alert escalates); one that cleared sends
    `end`. Event ids derive from the episode and severity, so a check repeated after a crash
    (events sent, state not saved) sends the same ids, which the alerts service applies once.
    """
    events: list[AlertEvent] = []
    after: dict[str, Open] = {}
    for c in found:
        was = open_.get(c.key)
        if was is not None and c.severity.rank <= was.severity.rank:
            after[c.key] = was
            continue
        start = was.episode_start if was is not None else now
        after[c.key] = Open(
            episode_start=start, severity=c.severity, subject=c.subject, kind=c.kind
        )
        events.append(
            _event(
                subject=c.subject,
                kind=c.kind,
                phase="start",
                severity=c.severity,
                start=start,
                at=now,
                explanation=_explain(c),
            )
        )
    for key, was in open_.items():
        if key not in after:
            events.append(
                _event(
                    subject=was.subject,
                    kind=was.kind,
                    phase="end",
                    severity=was.severity,
                    start=was.episode_start,
                    at=now,
                    explanation={"message": "cleared"},
                )
            )
    return events, after


def _explain(c: Condition) -> dict[str, Any]:
    return {"expected": c.expected, "observed": c.observed, "message": c.message, **c.extra}


def _event(
    *,
    subject: str,
    kind: str,
    phase: str,
    severity: Severity,
    start: datetime,
    at: datetime,
    explanation: dict[str, Any],
) -> AlertEvent:
    base = AlertEvent.make_id(device_id=subject, kind=kind, episode_start=start, phase=phase)
    return AlertEvent(
        event_id=f"{base}:{severity.value}" if phase == "start" else base,
        device_id=subject,
        domain=PLATFORM,
        kind=kind,
        phase=phase,  # type: ignore[arg-type]
        severity=severity,
        episode_start=start,
        ts=at,
        explanation=explanation,
    )
