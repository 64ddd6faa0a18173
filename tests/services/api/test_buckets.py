"""Unit tests for `services.api.buckets`: parsing `bucket=` and choosing the aggregate source."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from services.api.buckets import BadBucket, Bucket, Source, parse_bucket

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "width", "source"),
    [
        pytest.param("1m", timedelta(minutes=1), Source.RAW, id="1m"),
        pytest.param("5m", timedelta(minutes=5), Source.RAW, id="5m"),
        pytest.param("15m", timedelta(minutes=15), Source.RAW, id="15m"),
        pytest.param("59m", timedelta(minutes=59), Source.RAW, id="59m"),
        pytest.param("60m", timedelta(hours=1), Source.HOURLY, id="60m-is-hourly"),
        pytest.param("90m", timedelta(minutes=90), Source.RAW, id="90m-not-hour-multiple"),
        pytest.param("120m", timedelta(hours=2), Source.HOURLY, id="120m"),
        pytest.param("1h", timedelta(hours=1), Source.HOURLY, id="1h"),
        pytest.param("6h", timedelta(hours=6), Source.HOURLY, id="6h"),
        pytest.param("24h", timedelta(days=1), Source.HOURLY, id="24h-is-not-a-calendar-day"),
        pytest.param("168h", timedelta(days=7), Source.HOURLY, id="168h-maximum"),
        pytest.param("1d", timedelta(days=1), Source.DAILY, id="1d"),
        pytest.param("0015m", timedelta(minutes=15), Source.RAW, id="leading-zeros"),
        pytest.param("01d", timedelta(days=1), Source.DAILY, id="01d"),
        pytest.param("9999m", timedelta(minutes=9999), Source.RAW, id="9999m-under-7-days"),
        pytest.param("1008m", timedelta(minutes=1008), Source.RAW, id="1008m"),
    ],
)
def test_parse_bucket_accepts(text: str, width: timedelta, source: Source) -> None:
    assert parse_bucket(text) == Bucket(width=width, source=source)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("15", id="no-unit"),
        pytest.param("m", id="no-number"),
        pytest.param("15s", id="seconds"),
        pytest.param("1w", id="weeks"),
        pytest.param("1y", id="years"),
        pytest.param("15M", id="uppercase-m"),
        pytest.param("1H", id="uppercase-h"),
        pytest.param("1D", id="uppercase-d"),
        pytest.param(" 15m", id="leading-space"),
        pytest.param("15m ", id="trailing-space"),
        pytest.param("15m\n", id="trailing-newline"),
        pytest.param("15 m", id="inner-space"),
        pytest.param("1.5h", id="fraction"),
        pytest.param("-1h", id="negative"),
        pytest.param("+1h", id="plus-sign"),
        pytest.param("1hh", id="unit-doubled"),
        pytest.param("h1", id="unit-first"),
        pytest.param("1h30m", id="compound"),
        pytest.param("10000m", id="five-digits"),
        pytest.param("10080m", id="one-week-in-minutes-five-digits"),
        pytest.param("\u0661\u0665m", id="arabic-indic-digits"),
        pytest.param("\uff11h", id="fullwidth-digit"),
        pytest.param("PT15M", id="iso8601-duration"),
    ],
)
def test_parse_bucket_rejects_malformed(text: str) -> None:
    with pytest.raises(BadBucket, match="must look like"):
        parse_bucket(text)


@pytest.mark.parametrize(
    "text",
    [pytest.param(t, id=t) for t in ["0m", "0h", "0d", "00m", "0000h"]],
)
def test_parse_bucket_rejects_zero(text: str) -> None:
    with pytest.raises(BadBucket, match="positive"):
        parse_bucket(text)


@pytest.mark.parametrize(
    "text",
    [pytest.param(t, id=t) for t in ["2d", "7d", "30d", "9999d"]],
)
def test_parse_bucket_only_one_day(text: str) -> None:
    with pytest.raises(BadBucket, match="only 1d"):
        parse_bucket(text)


@pytest.mark.parametrize(
    "text",
    [pytest.param(t, id=t) for t in ["169h", "200h", "9999h"]],
)
def test_parse_bucket_at_most_seven_days(text: str) -> None:
    with pytest.raises(BadBucket, match="at most 7 days"):
        parse_bucket(text)


def test_bad_bucket_is_a_value_error() -> None:
    """Callers that only know ValueError (e.g. generic validation) still catch it."""
    assert issubclass(BadBucket, ValueError)
    with pytest.raises(ValueError, match="bucket"):
        parse_bucket("nonsense")


def test_sources_are_plain_strings() -> None:
    assert [s.value for s in Source] == ["raw", "hourly", "daily"]
    assert str(Source.HOURLY) == "hourly"


def test_bucket_is_immutable() -> None:
    bucket = parse_bucket("1h")
    with pytest.raises(dataclasses.FrozenInstanceError):
        bucket.source = Source.RAW  # type: ignore[misc]


def test_every_minute_bucket_picks_hourly_exactly_for_hour_multiples() -> None:
    for minutes in range(1, 10_000):  # every value the 4-digit grammar allows
        bucket = parse_bucket(f"{minutes}m")
        assert bucket.width == timedelta(minutes=minutes), minutes
        assert bucket.source is (Source.HOURLY if minutes % 60 == 0 else Source.RAW), minutes


@pytest.mark.parametrize("hours", [1, 2, 3, 12, 23, 25, 48, 167, 168], ids=lambda h: f"{h}h")
def test_hour_buckets_are_always_hourly(hours: int) -> None:
    assert parse_bucket(f"{hours}h") == Bucket(timedelta(hours=hours), Source.HOURLY)
