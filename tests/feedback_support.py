"""A building meter's weeks for the feedback tests: occupied 8:00-18:00 on weekdays, noisy, with
a fault (a share above the usual level) where a test wants one."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from shared.schemas import Reading

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=15)
DAY = 96  # readings
WARM_UP = 3 * 7 * DAY  # three weeks: every day type and slot seen several times
# Monday of the fourth week 10:00-12:00 UTC: a meeting-room heater left on, +50 %.
FAULT_HOURS = (10, 12)
FAULT_SHARE = 0.5


def usual(ts: datetime) -> float:
    hour = ts.hour + ts.minute / 60
    occupied = ts.weekday() < 5 and 8 <= hour < 18
    return 4.0 + (6.0 if occupied else 0.0) + 0.5 * math.sin(2 * math.pi * hour / 24)


def in_fault_hours(ts: datetime) -> bool:
    return FAULT_HOURS[0] <= ts.hour < FAULT_HOURS[1]


def readings(
    first: int, n: int, *, seed: int, extra: Callable[[datetime], float] = lambda ts: 0.0
) -> list[Reading]:
    """Readings `first` to `first + n - 1` (15 minutes apart from T0); `extra(ts)` is the share
    above the usual level (0.5: +50 %). The noise depends on the index only: the same readings
    whatever the split into calls."""
    out = []
    for i in range(first, first + n):
        ts = T0 + i * STEP
        noise = random.Random(seed * 1_000_003 + i).gauss(0, 0.6)
        value = usual(ts) * (1 + extra(ts)) + noise
        out.append(Reading(ts=ts, metric="energy_kwh", value=round(value, 3)))
    return out


def fault(ts: datetime) -> float:
    return FAULT_SHARE if in_fault_hours(ts) else 0.0
