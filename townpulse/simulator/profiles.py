"""Shape helpers shared by the domain models: daily curves built from hourly knots."""

from __future__ import annotations

from collections.abc import Sequence


def interp_daily(knots: Sequence[float], hour: float) -> float:
    """Linear interpolation in a table of 25 values for hours 0, 1, ..., 24.

    >>> interp_daily([float(h) for h in range(25)], 7.25)
    7.25
    """
    if len(knots) != 25:
        raise ValueError("a daily table has 25 knots (hours 0 to 24 inclusive)")
    h = hour % 24.0
    i = int(h)
    frac = h - i
    return knots[i] + (knots[i + 1] - knots[i]) * frac


def window(hour: float, start: float, end: float, *, ramp: float = 0.5) -> float:
    """1 between `start` and `end`, 0 outside, with linear ramps of `ramp` hours inside.

    >>> window(12.0, 8.0, 18.0), window(8.25, 8.0, 18.0), window(20.0, 8.0, 18.0)
    (1.0, 0.5, 0.0)
    """
    if hour <= start or hour >= end:
        return 0.0
    return min(1.0, (hour - start) / ramp, (end - hour) / ramp)
