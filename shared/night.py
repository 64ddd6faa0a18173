"""When a town's streets should be lit: the sun at its coordinates and the council's schedule.

Pure and deterministic (astral's almanac formulas, no clock, no network): the lighting
service's processor calls it for each reading and a replay gets the same answers. It is in
shared/ (not in services/lighting/) because the simulator's lighting cabinets follow the same
schedule, read from the same settings (`ScheduleSettings`, which the lighting service's
settings extend): townpulse/ never imports a service.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import sunrise, sunset
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.townzone import DEFAULT_ZONE, TownZone

Mode = Literal["off", "dim", "full"]


@functools.lru_cache(maxsize=4096)
def sun_times(
    day: date, *, latitude: float, longitude: float, zone: str
) -> tuple[datetime, datetime] | None:
    """Sunrise and sunset of the town's `day` (aware datetimes), or None where the sun neither
    rises nor sets that day (polar day or night: no daylight rule applies).

    >>> paris = {"latitude": 48.85, "longitude": 2.35, "zone": "Europe/Paris"}
    >>> rise, fall = sun_times(date(2026, 6, 21), **paris)
    >>> rise.strftime("%H:%M"), fall.strftime("%H:%M")
    ('05:47', '21:57')
    """
    observer = Observer(latitude=latitude, longitude=longitude)
    tz = ZoneInfo(zone)
    try:
        return sunrise(observer, day, tzinfo=tz), sunset(observer, day, tzinfo=tz)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Town:
    """Where the town is, which clock it keeps, and the council's lighting schedule.

    `off`: local hours during which the lights are switched off (start, end; may span
    midnight), `dim`: those during which they are dimmed to `dim_pct` % of full power.
    `tolerance`: how long after sunrise or before sunset lights may still be on (photocells,
    twilight), and after sunset or before sunrise they may still be off.
    """

    latitude: float
    longitude: float
    zone: str
    off: tuple[time, time] | None = None
    dim: tuple[time, time] | None = None
    dim_pct: float = 50.0
    tolerance: timedelta = timedelta(minutes=30)

    def sun(self, day: date) -> tuple[datetime, datetime] | None:
        return sun_times(day, latitude=self.latitude, longitude=self.longitude, zone=self.zone)

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(ZoneInfo(self.zone))

    def daylight(self, ts: datetime) -> bool:
        """Whether it is plainly day at `ts`: past sunrise and before sunset by the tolerance."""
        sun = self.sun(self.local(ts).date())
        return sun is not None and sun[0] + self.tolerance <= ts <= sun[1] - self.tolerance

    def dark(self, ts: datetime) -> bool:
        """Whether it is plainly night at `ts` (by the tolerance), when lights should be on
        unless the schedule switches them off."""
        sun = self.sun(self.local(ts).date())
        return sun is not None and (ts >= sun[1] + self.tolerance or ts <= sun[0] - self.tolerance)

    def night(self, ts: datetime) -> bool:
        """Between sunset and sunrise: the hours lighting all night would be lit."""
        sun = self.sun(self.local(ts).date())
        return sun is not None and (ts >= sun[1] or ts < sun[0])

    def mode(self, ts: datetime) -> Mode:
        """What the schedule asks of the lights at `ts` (at night)."""
        clock = self.local(ts).time()
        if self.off is not None and _within(clock, *self.off):
            return "off"
        if self.dim is not None and _within(clock, *self.dim):
            return "dim"
        return "full"

    def plan(self, day: date, *, step: timedelta = timedelta(minutes=5)) -> NightPlan | None:
        """The night starting on the evening of `day`: sunset to next sunrise, the hours of
        each mode of the schedule (sampled every `step`)."""
        evening, morning = self.sun(day), self.sun(day + timedelta(days=1))
        if evening is None or morning is None:
            return None
        start, end = evening[1], morning[0]
        hours: dict[Mode, float] = {"off": 0.0, "dim": 0.0, "full": 0.0}
        t = start
        while t < end:
            width = min(step, end - t)
            hours[self.mode(t + width / 2)] += width / timedelta(hours=1)
            t += width
        return NightPlan(day, start, end, hours)

    def nights(self, start: datetime, end: datetime) -> list[NightPlan]:
        """The nights (sunset to sunrise) overlapping [start, end), in order.

        >>> town = Town(latitude=48.85, longitude=2.35, zone="Europe/Paris")
        >>> noon = datetime(2026, 12, 8, 11, tzinfo=ZoneInfo("UTC"))
        >>> [str(n.day) for n in town.nights(noon, noon + timedelta(days=1))]
        ['2026-12-08']
        """
        plans = (
            self.plan(self.local(start).date() + timedelta(days=k))
            for k in range(-1, (end - start).days + 2)
        )
        return [p for p in plans if p is not None and p.dawn > start and p.dusk < end]

    def schedule(self, plan: NightPlan) -> dict[str, object]:
        """A night as the town publishes it: the sun's times, the council's hours (local,
        "HH:MM"), the dimmed level and the hours at each mode."""
        off_from, off_to = (t.strftime("%H:%M") for t in self.off) if self.off else (None, None)
        dim_from, dim_to = (t.strftime("%H:%M") for t in self.dim) if self.dim else (None, None)
        return {
            "night": plan.day,
            # To the second: the almanac's microseconds are no precision a citizen can use.
            "sunset": self.local(plan.dusk).replace(microsecond=0),
            "sunrise": self.local(plan.dawn).replace(microsecond=0),
            "off_from": off_from,
            "off_to": off_to,
            "dim_from": dim_from,
            "dim_to": dim_to,
            "dim_pct": self.dim_pct if self.dim else None,
            "full_h": round(plan.hours["full"], 2),
            "dim_h": round(plan.hours["dim"], 2),
            "off_h": round(plan.hours["off"], 2),
        }


@dataclass(frozen=True, slots=True)
class NightPlan:
    day: date
    dusk: datetime
    dawn: datetime
    hours: dict[Mode, float]

    def forecast_kwh(self, *, full_w: float, dim_w: float) -> float:
        """The night's energy at the circuit's learnt powers, following the schedule."""
        return (full_w * self.hours["full"] + dim_w * self.hours["dim"]) / 1000

    def all_night_kwh(self, full_w: float) -> float:
        """The same night lit at full power from dusk to dawn (what savings are counted from)."""
        return full_w * sum(self.hours.values()) / 1000


def _within(clock: time, start: time, end: time) -> bool:
    """Whether `clock` is in [start, end), a window that may span midnight.

    >>> _within(time(1), time(23), time(5)), _within(time(22), time(23), time(5))
    (True, False)
    """
    if start <= end:
        return start <= clock < end
    return clock >= start or clock < end


def parse_window(text: str | None) -> tuple[time, time] | None:
    """'23:00-05:00' as a window; None or '' for no window.

    >>> parse_window("23:00-05:00")
    (datetime.time(23, 0), datetime.time(5, 0))
    """
    if not text:
        return None
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"{text!r}: expected HH:MM-HH:MM")
    window = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    if window[0] == window[1]:
        raise ValueError(f"{text!r}: an empty window")
    return window


class ScheduleSettings(BaseSettings):
    """Where the town is and the council's lighting schedule, from the environment: read by the
    lighting service (its settings extend these) and by the simulator's lighting cabinets."""

    model_config = SettingsConfigDict(env_prefix="TOWNPULSE_", frozen=True, extra="ignore")

    timezone: TownZone = DEFAULT_ZONE
    # Where the town is (sunrise and sunset): TOWNPULSE_TOWN_LATITUDE / _LONGITUDE, degrees.
    # Default: Paris; set the town's own.
    town_latitude: float = Field(default=48.8566, ge=-90, le=90)
    town_longitude: float = Field(default=2.3522, ge=-180, le=180)
    # The council's schedule, local hours "HH:MM-HH:MM" (may span midnight), empty for none:
    # lights switched off, lights dimmed to `lighting_dim_pct` % of full power.
    lighting_off_hours: str = ""
    lighting_dim_hours: str = ""
    lighting_dim_pct: float = Field(default=50.0, ge=0, le=100)
    # Lights on this long after sunrise (or still off this long after sunset) is a fault.
    lighting_tolerance_min: int = Field(default=30, ge=0, le=180)

    @field_validator("lighting_off_hours", "lighting_dim_hours")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value

    def town(self) -> Town:
        return Town(
            latitude=self.town_latitude,
            longitude=self.town_longitude,
            zone=self.timezone,
            off=parse_window(self.lighting_off_hours),
            dim=parse_window(self.lighting_dim_hours),
            dim_pct=self.lighting_dim_pct,
            tolerance=timedelta(minutes=self.lighting_tolerance_min),
        )
