"""Parsing `bucket=` and choosing where aggregates come from.

Sub-hour buckets are computed from raw readings; hour multiples from the hourly rollup; `1d` from
the daily rollup, whose days are the town's calendar days (`TOWNPULSE_TIMEZONE`, not UTC's: see
shared/townzone.py). Bins start at the town's midnight; the hourly rollup's hours are UTC's, so
in a zone whose offset is not whole hours (Asia/Kolkata) hour multiples are UTC's hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

# [0-9], not \d (which also matches e.g. Arabic-Indic digits); used with fullmatch, since `$`
# alone would also accept a trailing newline.
BUCKET_RE = re.compile(r"([0-9]{1,4})(m|h|d)")


class Source(StrEnum):
    RAW = "raw"
    HOURLY = "hourly"
    DAILY = "daily"


@dataclass(frozen=True, slots=True)
class Bucket:
    width: timedelta
    source: Source


class BadBucket(ValueError):
    pass


def parse_bucket(text: str) -> Bucket:
    """Parse `15m`, `1h`, `6h`, `1d`.

    >>> parse_bucket("15m")
    Bucket(width=datetime.timedelta(seconds=900), source=<Source.RAW: 'raw'>)
    >>> parse_bucket("120m").source
    <Source.HOURLY: 'hourly'>
    >>> parse_bucket("1d").source
    <Source.DAILY: 'daily'>
    """
    m = BUCKET_RE.fullmatch(text)
    if not m:
        raise BadBucket("bucket must look like 15m, 1h or 1d")
    n, unit = int(m.group(1)), m.group(2)
    if n == 0:
        raise BadBucket("bucket must be positive")
    if unit == "d":
        if n != 1:
            raise BadBucket("day buckets are calendar days: only 1d is supported")
        return Bucket(timedelta(days=1), Source.DAILY)
    width = timedelta(minutes=n) if unit == "m" else timedelta(hours=n)
    if width > timedelta(days=7):
        raise BadBucket("bucket is at most 7 days (168h)")
    if width % timedelta(hours=1) == timedelta(0):
        return Bucket(width, Source.HOURLY)
    return Bucket(width, Source.RAW)
