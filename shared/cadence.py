"""Durations in time on devices that each report at their own pace.

The domain services' rules are durations ("an episode opens after 45 minutes of anomalous
readings", "a meter is stuck after two hours of one value"). A device's `Cadence`, its reporting
interval learnt from its own readings, turns a duration into the number of its readings that
cover it: 45 minutes are 3 readings of a 15-minute meter, 1 of an hourly one, 45 of a meter
reading every minute. Counting readings, each standing for one interval, rather than measuring
the clock between the first and the last, keeps a lost reading from shortening a duration.

The cadence is part of each device's checkpointed state: a restart does not relearn it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

# The town's usual pace (the simulator's and most LoRaWAN meters'): what a device is assumed to
# report at until two of its readings have said otherwise.
DEFAULT_INTERVAL = timedelta(minutes=15)
# Gaps under a minute are retransmissions and duplicates, not a reporting pace.
MIN_INTERVAL = timedelta(minutes=1)
# A device reporting less than daily has no intra-day durations worth counting in readings.
MAX_INTERVAL = timedelta(days=1)
# The interval is the median of this many recent gaps: a day-long outage or a burst of
# retransmissions moves it not at all, a device that changes its pace is followed within a
# dozen readings (more than half of the gaps must agree).
GAPS = 15


def readings_for(duration: timedelta, interval: timedelta) -> int:
    """How many readings of a device reporting every `interval` cover `duration` (at least
    one: a zero duration means "the first reading").

    >>> m = timedelta(minutes=1)
    >>> [readings_for(45 * m, i * m) for i in (1, 15, 60)]
    [45, 3, 1]
    >>> readings_for(timedelta(0), 15 * m), readings_for(2 * 60 * m, 15 * m)
    (1, 8)
    """
    if duration <= timedelta(0):
        return 1
    # The tolerance keeps 2 h / 15 min at 8 despite float rounding of odd intervals.
    return max(1, math.ceil(duration / interval - 1e-9))


@dataclass
class Cadence:
    """A device's reporting interval, learnt: the median of its recent gaps, within
    [`MIN_INTERVAL`, `MAX_INTERVAL`], `DEFAULT_INTERVAL` until it has one.

    >>> from datetime import UTC
    >>> c, t0 = Cadence(), datetime(2026, 3, 2, tzinfo=UTC)
    >>> for k in [0, 60, 120, 121, 180, 240, 600, 660]:  # a retransmission, an outage
    ...     _ = c.observe(t0 + timedelta(minutes=k))
    >>> c.interval, c.readings(timedelta(hours=3))
    (datetime.timedelta(seconds=3600), 3)
    """

    # Seconds, newest last.
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=GAPS))
    last_ts: datetime | None = None
    _interval: timedelta | None = None

    @classmethod
    def seeded(cls, period: timedelta | None, last_ts: datetime | None) -> Cadence:
        """A cadence that starts from a period learnt before cadences existed (a checkpoint
        written by an earlier version kept the smallest gap it had seen)."""
        c = cls(last_ts=last_ts)
        if period is not None and period >= MIN_INTERVAL:
            c.gaps.append(period.total_seconds())
            c._interval = c._median()
        return c

    @property
    def known(self) -> bool:
        """Whether at least one gap between readings has been seen."""
        return self._interval is not None

    @property
    def interval(self) -> timedelta:
        return self._interval if self._interval is not None else DEFAULT_INTERVAL

    def readings(self, duration: timedelta) -> int:
        """How many of this device's readings cover `duration` (see `readings_for`)."""
        return readings_for(duration, self.interval)

    def observe(self, ts: datetime) -> timedelta | None:
        """Take a reading's time; returns the gap since the previous reading (None for the
        first, or a reading out of order, which teaches nothing)."""
        last = self.last_ts
        if last is None or ts <= last:
            if last is None:
                self.last_ts = ts
            return None
        self.last_ts = ts
        gap = ts - last
        if gap >= MIN_INTERVAL:
            self.gaps.append(gap.total_seconds())
            self._interval = self._median()
        return gap

    def _median(self) -> timedelta:
        ordered = sorted(self.gaps)
        mid = len(ordered) // 2
        seconds = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return min(MAX_INTERVAL, max(MIN_INTERVAL, timedelta(seconds=seconds)))


def spoken(duration: timedelta) -> tuple[str, str]:
    """A rule's duration as the public register says it, in French and English.

    >>> spoken(timedelta(minutes=45)), spoken(timedelta(hours=2)), spoken(timedelta(days=3))
    (('45 min', '45 min'), ('2 h', '2 h'), ('3 jours', '3 days'))
    """
    minutes = int(duration / timedelta(minutes=1))
    if minutes % 1440 == 0 and minutes >= 1440:
        days = minutes // 1440
        return (f"{days} jour{'s' * (days > 1)}", f"{days} day{'s' * (days > 1)}")
    if minutes % 60 == 0 and minutes >= 60:
        return (f"{minutes // 60} h", f"{minutes // 60} h")
    return (f"{minutes} min", f"{minutes} min")


class _Trusting(Protocol):
    trusted: bool


class _Timed(Protocol):
    cadence: Cadence

    @property
    def warm(self) -> _Trusting: ...  # a shared.ml.warmup.WarmUp


def upgrade_timing(state: _Timed, old: Mapping[str, object]) -> None:
    """A device state saved before durations were time and models warmed up (its `period` and
    `last_ts` fields): its cadence is seeded from them, and its model, having learnt for as long
    as it ran, is trusted. One rule for every domain's `Upgradable._upgrade`."""
    if "cadence" not in old:
        period, last_ts = old.get("period"), old.get("last_ts")
        state.cadence = Cadence.seeded(
            period if isinstance(period, timedelta) else None,
            last_ts if isinstance(last_ts, datetime) else None,
        )
    if "warm" not in old:
        state.warm.trusted = True
