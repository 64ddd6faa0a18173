"""Deterministic, stateless noise: the same keys always give the same number.

Keying noise on (seed, device, channel, time) rather than drawing from a shared generator means
a reading does not depend on where an iteration started, so a restarted simulator reproduces
exactly the values it would have produced anyway.
"""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

_UNIT = NormalDist()
_SCALE = float(2**64)


def uniform(*keys: object) -> float:
    """A number in the open interval (0, 1), fixed for the given keys.

    >>> uniform(42, "bin-001", 0) == uniform(42, "bin-001", 0)
    True
    >>> 0.0 < uniform("any", "keys") < 1.0
    True
    """
    text = "\x1f".join(map(str, keys)).encode()
    raw = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")
    return (raw + 0.5) / _SCALE


def gauss(*keys: object) -> float:
    """A standard normal draw, fixed for the given keys.

    >>> gauss(1, "x") == gauss(1, "x")
    True
    """
    return _UNIT.inv_cdf(uniform(*keys))


def smooth(*keys: object, x: float, period: float) -> float:
    """Standard-normal value noise that varies smoothly with `x` on the scale of `period`.

    Values at knots `k * period` are independent draws; between knots they are blended with
    a cosine so the curve has no kinks.

    >>> smooth("s", x=0.0, period=10.0) == gauss("s", 0)
    True
    """
    pos = x / period
    knot = math.floor(pos)
    frac = pos - knot
    weight = (1.0 - math.cos(math.pi * frac)) / 2.0
    left = gauss(*keys, knot)
    right = gauss(*keys, knot + 1)
    return left + (right - left) * weight
