"""Alerts against labelled events: what a technician would have been told, and when.

The unit is the alert as it opened (one per episode, after the service's damping), not a
reading's score. Labels are time windows, ``start,end[,kind]`` (CSV, docs/evaluate.md):

- an event is detected when an alert opens within its window (``start <= opened <= end``); its
  detection delay is the first such opening minus ``start``;
- an alert opening in no window, nor within ``after`` of a window's end (the fault's own
  aftermath: a load coming back down, a meter catching up), is a false alert;
- rates are per device-month (30.44 days) of judged time.

Used by ``townpulse evaluate --labels`` and ``bench.energy_faults``, so both count the same way.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

MONTH = timedelta(days=30.44)
# Alerts this soon after a labelled window's end belong to it (neither a detection nor false).
AFTER = timedelta(hours=24)
UNKNOWN_KIND = "unlabelled"
# Bounds on a labels file: a town's history, not an arbitrary upload.
MAX_LABELS = 100_000


class LabelsFormatError(ValueError):
    """The labels file does not follow docs/evaluate.md."""


@dataclass(frozen=True, slots=True)
class Label:
    start: datetime
    end: datetime
    kind: str = UNKNOWN_KIND


def read_labels(path: Path, *, tz: tzinfo = UTC) -> list[Label]:
    """Rows of ``start,end[,kind]`` (ISO 8601; without an offset read in ``tz``), by start."""
    out: list[Label] = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if fields[:2] != ["start", "end"] or not set(fields) <= {"start", "end", "kind"}:
            raise LabelsFormatError(f"{path}: header must be start,end[,kind], got {fields}")
        for line, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            try:
                start, end = (_aware(row[k], tz) for k in ("start", "end"))
            except ValueError as exc:
                raise LabelsFormatError(f"{path}:{line}: {exc}") from exc
            if end < start:
                raise LabelsFormatError(f"{path}:{line}: end {end} is before start {start}")
            kind = row.get("kind") or UNKNOWN_KIND
            if len(kind) > 64:
                raise LabelsFormatError(f"{path}:{line}: kind longer than 64 characters")
            out.append(Label(start, end, kind))
            if len(out) > MAX_LABELS:
                raise LabelsFormatError(f"{path}: more than {MAX_LABELS} labels")
    return sorted(out, key=lambda lab: lab.start)


def write_labels(path: Path, labels: Iterable[Label]) -> Path:
    """The labels as ``read_labels`` reads them (UTC offsets written out)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["start", "end", "kind"])
        for lab in labels:
            w.writerow([lab.start.isoformat(), lab.end.isoformat(), lab.kind])
    return path


def _aware(text: str, tz: tzinfo) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=tz)


@dataclass(frozen=True, slots=True)
class Matched:
    label: Label
    # The first alert opening within the window, or None (missed).
    first_alert: datetime | None

    @property
    def delay(self) -> timedelta | None:
        return None if self.first_alert is None else self.first_alert - self.label.start


def match(
    opened: Sequence[datetime], labels: Sequence[Label], *, after: timedelta = AFTER
) -> tuple[list[Matched], list[datetime]]:
    """Each label with its first alert, and the false alerts.

    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> h = timedelta(hours=1)
    >>> got, false = match([t + 2 * h, t + 20 * h, t + 90 * h], [Label(t, t + 5 * h, "spike")])
    >>> got[0].delay == 2 * h, false == [t + 90 * h]
    (True, True)
    """
    matched = []
    for lab in labels:
        inside = [t for t in opened if lab.start <= t <= lab.end]
        matched.append(Matched(lab, min(inside) if inside else None))
    false = [t for t in opened if not any(lab.start <= t <= lab.end + after for lab in labels)]
    return matched, false


def per_kind(matched: Sequence[Matched]) -> dict[str, dict[str, Any]]:
    """Events, detected, recall and median delay (hours) for each label kind."""
    out: dict[str, dict[str, Any]] = {}
    for kind in sorted({m.label.kind for m in matched}):
        ms = [m for m in matched if m.label.kind == kind]
        delays = [d.total_seconds() / 3600 for m in ms if (d := m.delay) is not None]
        out[kind] = {
            "events": len(ms),
            "detected": len(delays),
            "recall": round(len(delays) / len(ms), 4),
            "median_delay_h": round(statistics.median(delays), 2) if delays else None,
        }
    return out


def score_alerts(
    opened: Sequence[datetime],
    labels: Sequence[Label],
    *,
    months: float,
    after: timedelta = AFTER,
) -> dict[str, Any]:
    """The figures of one device (or several: ``months`` is their judged time in all).

    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> h = timedelta(hours=1)
    >>> s = score_alerts([t + 2 * h, t + 90 * h], [Label(t, t + 5 * h, "spike")], months=0.5)
    >>> s["recall"], s["false_alerts"], s["false_alerts_per_device_month"]
    (1.0, 1, 2.0)
    >>> s["by_kind"]["spike"]["median_delay_h"]
    2.0
    """
    matched, false = match(opened, labels, after=after)
    detected = sum(m.first_alert is not None for m in matched)
    return {
        "alerts": len(opened),
        "events": len(matched),
        "detected": detected,
        "recall": round(detected / len(matched), 4) if matched else None,
        "false_alerts": len(false),
        "months": round(months, 3),
        "false_alerts_per_device_month": round(len(false) / months, 4) if months > 0 else None,
        "by_kind": per_kind(matched),
    }


def alerts_per_month(opened: Sequence[datetime], *, months: float) -> float | None:
    """Alerts per device-month: on data without injected faults, every alert is one a
    technician would be sent to look at."""
    return round(len(opened) / months, 4) if months > 0 else None
