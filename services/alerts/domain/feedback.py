"""The technician's verdict on an alert, and the precision it gives per domain.

A verdict is "real" (a fault worth the visit), "false alarm" (nothing was wrong: the device's
model recalibrates, docs/energy.md "Feedback") or "expected" (planned works, an event in a hall:
the period is kept out of the model's learning). The latest verdict on an alert counts; earlier
ones stay in `alert_feedback` and the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

# A sentence or two for whoever reads the alert next; longer belongs in a ticket.
NOTE_MAX_CHARS = 500
# The overview's window; the API's accepts 1 to MAX_PRECISION_DAYS.
PRECISION_DAYS = 30
MAX_PRECISION_DAYS = 365


class Verdict(StrEnum):
    REAL = "real"
    FALSE_ALARM = "false_alarm"
    EXPECTED = "expected"


@dataclass(frozen=True, slots=True)
class DomainPrecision:
    """Alerts of one domain opened in the window, by their latest verdict."""

    domain: str
    real: int
    false_alarm: int
    expected: int
    without_feedback: int

    @property
    def precision(self) -> float | None:
        """real / (real + false alarm); None when no alert was judged either way (never a
        precision computed over nothing).

        >>> DomainPrecision("energy", 3, 1, 5, 2).precision
        0.75
        >>> DomainPrecision("energy", 0, 0, 4, 9).precision is None
        True
        """
        judged = self.real + self.false_alarm
        return None if judged == 0 else self.real / judged

    def public(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "precision": self.precision,
            "real": self.real,
            "false_alarm": self.false_alarm,
            "expected": self.expected,
            "with_feedback": self.real + self.false_alarm + self.expected,
            "without_feedback": self.without_feedback,
        }


def episode_period(
    *, explanation: dict[str, Any], first_seen: datetime, last_seen: datetime, active: bool
) -> tuple[datetime, datetime | None]:
    """The period the verdict is about: from the episode's first flagged reading (the domain's
    `episode_start`, else the alert's first sighting) to its last sighting; open-ended while
    the signal is still active (the episode goes on).

    >>> from datetime import UTC
    >>> t0, t1 = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC)
    >>> episode_period(explanation={}, first_seen=t0, last_seen=t1, active=True) == (t0, None)
    True
    >>> start = {"episode_start": "2026-01-04T23:00:00+00:00"}
    >>> episode_period(explanation=start, first_seen=t0, last_seen=t1, active=False)[0].hour
    23
    """
    start = first_seen
    raw = explanation.get("episode_start")
    if isinstance(raw, str):
        try:
            given = datetime.fromisoformat(raw)
        except ValueError:
            given = None
        if given is not None and given.tzinfo is not None:
            start = min(first_seen, given)
    return start, None if active else last_seen
