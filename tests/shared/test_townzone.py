"""The town's time zone as a setting and the day arithmetic on it (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from shared.db import town_zone
from shared.settings import ServiceSettings
from shared.townzone import TownZoneError, bin_origin, check_timezone, day_bounds, today

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name", ["Mars/Olympus_Mons", "Europe/Pariss", "", "../../etc/passwd", "UTC+3", "EST5EDT,M3"]
)
def test_an_unknown_zone_stops_the_settings_with_the_setting_named(name: str) -> None:
    with pytest.raises(ValidationError) as err:
        ServiceSettings(dev_mode=True, timezone=name)
    text = str(err.value)
    assert "timezone" in text and "unknown time zone" in text and "IANA" in text


@pytest.mark.parametrize("name", ["Asia/Tokyo", "America/New_York", "Asia/Kolkata", "UTC"])
def test_an_iana_zone_is_the_setting(name: str) -> None:
    assert ServiceSettings(dev_mode=True, timezone=name).timezone == check_timezone(name) == name


def test_the_setting_comes_from_townpulse_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWNPULSE_TIMEZONE", "America/New_York")
    assert ServiceSettings(dev_mode=True).timezone == "America/New_York"
    monkeypatch.setenv("TOWNPULSE_TIMEZONE", "America/Nowhere")
    with pytest.raises(ValidationError, match="unknown time zone"):
        ServiceSettings(dev_mode=True)


def test_the_migrations_read_the_same_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # `townpulse up` migrates outside any service: same variable, same check, no traceback.
    monkeypatch.delenv("TOWNPULSE_TIMEZONE", raising=False)
    assert town_zone() == ServiceSettings(dev_mode=True).timezone == "Europe/Paris"
    monkeypatch.setenv("TOWNPULSE_TIMEZONE", "Asia/Tokyo")
    assert town_zone() == "Asia/Tokyo"
    monkeypatch.setenv("TOWNPULSE_TIMEZONE", "Europe/Pariss")
    with pytest.raises(
        TownZoneError, match=r"TOWNPULSE_TIMEZONE: .*unknown time zone 'Europe/Pariss'"
    ):
        town_zone()


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("Asia/Tokyo", date(2026, 3, 1)),
        ("America/New_York", date(2026, 3, 8)),  # clocks go forward: 23 hours
        ("America/New_York", date(2026, 11, 1)),  # and back: 25 hours
        ("Asia/Kolkata", date(2026, 6, 1)),
        ("Europe/Paris", date(2026, 10, 25)),
    ],
)
def test_a_day_is_from_the_towns_midnight_to_the_next(zone: str, day: date) -> None:
    tz = ZoneInfo(zone)
    start, end = day_bounds(day, zone)
    assert start.tzinfo is UTC and end.tzinfo is UTC
    for edge, expected_day in ((start, day), (end, day + timedelta(days=1))):
        local = edge.astimezone(tz)
        assert (local.date(), local.hour, local.minute) == (expected_day, 0, 0)
        # A microsecond before the edge is the day before, in the town.
        assert (edge - timedelta(microseconds=1)).astimezone(tz).date() == expected_day - (
            timedelta(days=1)
        )
    hours = (end - start) / timedelta(hours=1)
    offsets = (start.astimezone(tz).utcoffset(), end.astimezone(tz).utcoffset())
    assert hours == 24 - (offsets[1] - offsets[0]) / timedelta(hours=1)  # type: ignore[operator]


def test_today_is_the_towns_date_not_utcs() -> None:
    # 15:30 UTC: already tomorrow in Tokyo, still today in New York.
    now = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)
    assert today("Asia/Tokyo", now) == date(2026, 3, 2)
    assert today("America/New_York", now) == date(2026, 3, 1)
    assert today("UTC", now) == now.date()


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "Asia/Kolkata", "America/St_Johns", "UTC"])
def test_bins_start_at_the_towns_midnight(zone: str) -> None:
    local = bin_origin(zone).astimezone(ZoneInfo(zone))
    assert (local.date(), local.hour, local.minute) == (date(2000, 1, 1), 0, 0)
