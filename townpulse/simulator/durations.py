"""Human-friendly durations for the command line: `90s`, `15m`, `6h`, `2d`, `1w`, `1d12h`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as `2d`, `6h`, `1d12h` or `0`.

    >>> parse_duration("1d12h")
    datetime.timedelta(days=1, seconds=43200)
    >>> parse_duration("0")
    datetime.timedelta(0)
    """
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned in ("0", ""):
        return timedelta(0)
    parts = _PART.findall(cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise ValueError(f"invalid duration {text!r}; use e.g. 90s, 15m, 6h, 2d, 1w or 1d12h")
    return sum((timedelta(**{_UNITS[u]: float(n)}) for n, u in parts), timedelta(0))
