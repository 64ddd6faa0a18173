"""Electricity consumption of a building: occupancy profiles, standby load and heating."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from townpulse.simulator import noise
from townpulse.simulator.calendar_fr import DayType, day_type, local_hour, to_local
from townpulse.simulator.profiles import interp_daily, window
from townpulse.simulator.town import BuildingKind, MeterSpec

# Below this outdoor temperature the building needs heating (internal gains cover the rest).
BALANCE_TEMP_C = 15.0
# Heating runs at reduced set-point when nobody is in (night, weekend).
SETBACK_FACTOR = 0.45
# A fault (stuck contactor, heater jammed on) adds this share of the peak load.
STEP_UP_SHARE = 0.6
NOISE_REL = 0.04

_HOUSING_WORKDAY = (
    0.15,
    0.12,
    0.1,
    0.1,
    0.1,
    0.15,
    0.45,
    0.75,
    0.6,
    0.35,
    0.3,
    0.35,
    0.45,
    0.4,
    0.3,
    0.3,
    0.4,
    0.6,
    0.85,
    1.0,
    0.95,
    0.8,
    0.55,
    0.3,
    0.15,
)
_HOUSING_WEEKEND = (
    0.2,
    0.15,
    0.1,
    0.1,
    0.1,
    0.1,
    0.15,
    0.3,
    0.6,
    0.75,
    0.7,
    0.7,
    0.8,
    0.7,
    0.6,
    0.55,
    0.6,
    0.7,
    0.85,
    1.0,
    0.95,
    0.85,
    0.65,
    0.4,
    0.2,
)


def _school_break(day: date) -> bool:
    # Summer holidays; shorter school breaks are left out of the model.
    return day.month == 8 or (day.month == 7 and day.day >= 6)


def occupancy(kind: BuildingKind, *, day: date, hour: float) -> float:
    """Share of the building's variable load in use, in [0, 1].

    Parameters
    ----------
    kind
        Building type.
    day
        Local calendar day (public holidays count as Sundays).
    hour
        Local hour of the day in [0, 24).

    Examples
    --------
    >>> occupancy(BuildingKind.OFFICE, day=date(2026, 3, 2), hour=10.0)
    1.0
    >>> occupancy(BuildingKind.OFFICE, day=date(2026, 3, 2), hour=3.0)
    0.0
    >>> occupancy(BuildingKind.OFFICE, day=date(2026, 7, 14), hour=10.0)
    0.0
    """
    dt = day_type(day)
    if kind is BuildingKind.HOUSING:
        table = _HOUSING_WORKDAY if dt is DayType.WORKDAY else _HOUSING_WEEKEND
        return interp_daily(table, hour)
    if kind is BuildingKind.SCHOOL:
        if dt is not DayType.WORKDAY or _school_break(day):
            return 0.0
        # No afternoon classes on Wednesdays in French primary schools.
        return window(hour, 7.5, 12.5 if day.weekday() == 2 else 17.5)
    if kind is BuildingKind.OFFICE:
        return window(hour, 7.5, 19.0) if dt is DayType.WORKDAY else 0.0
    if kind is BuildingKind.TOWN_HALL:
        if dt is DayType.WORKDAY:
            return max(
                window(hour, 8.0, 12.0), window(hour, 13.5, 17.5), 0.6 * window(hour, 8.0, 17.5)
            )
        return 0.6 * window(hour, 9.0, 12.0) if dt is DayType.SATURDAY else 0.0
    if kind is BuildingKind.SHOP:
        if dt is DayType.SUNDAY:
            return 0.8 * window(hour, 8.5, 12.5)
        return window(hour, 8.0, 19.5)
    if kind is BuildingKind.GYM:
        if dt is DayType.WORKDAY:
            return max(0.5 * window(hour, 7.0, 22.0), window(hour, 17.0, 21.5))
        return (
            0.8 * window(hour, 9.0, 19.0)
            if dt is DayType.SATURDAY
            else (0.6 * window(hour, 9.0, 13.0))
        )
    # Library: closed on Mondays and Sundays.
    if dt is DayType.SUNDAY or (dt is DayType.WORKDAY and day.weekday() == 0):
        return 0.0
    return window(hour, 10.0, 18.0 if dt is DayType.WORKDAY else 17.0)


def meter_power_kw(
    spec: MeterSpec,
    *,
    ts: datetime,
    outdoor_c: float,
    left_on: bool = False,
    step_up: bool = False,
) -> float:
    """Mean electric power of the building around instant `ts`, noise-free.

    Parameters
    ----------
    spec
        The meter's building.
    ts
        Aware instant (usually the middle of the metering interval).
    outdoor_c
        Outdoor temperature.
    left_on
        Lights, ventilation and heating left on as on a working day (event `meter_left_on`).
    step_up
        A fault adds a constant load (event `meter_step_up`).
    """
    local = to_local(ts)
    occ = 1.0 if left_on else occupancy(spec.building, day=local.date(), hour=local_hour(local))
    variable = (spec.peak_kw - spec.base_kw) * occ
    # Homes are heated all the time; other buildings drop to a set-back when empty.
    occupied = left_on or occ > 0.05 or spec.building is BuildingKind.HOUSING
    heating = spec.heat_loss_kw_per_k * max(0.0, BALANCE_TEMP_C - outdoor_c)
    if not occupied:
        heating *= SETBACK_FACTOR
    fault = STEP_UP_SHARE * spec.peak_kw if step_up else 0.0
    return spec.base_kw + variable + heating + fault


def meter_energy_kwh(
    spec: MeterSpec,
    *,
    key: tuple[object, ...],
    ts: datetime,
    step: timedelta,
    outdoor_c: float,
    left_on: bool = False,
    step_up: bool = False,
) -> float:
    """Energy used in the interval ending at `ts`, with metering noise.

    `key` identifies the noise stream (seed, device id); `outdoor_c` is taken at mid-interval.

    >>> from datetime import UTC
    >>> spec = MeterSpec(BuildingKind.OFFICE, 2.0, 20.0, 1.0, 1000)
    >>> ts = datetime(2026, 3, 2, 10, tzinfo=UTC)
    >>> kwh = meter_energy_kwh(spec, key=(1, "m"), ts=ts, step=timedelta(minutes=15),
    ...                        outdoor_c=20.0)
    >>> 4.0 < kwh < 6.0
    True
    """
    mid = ts - step / 2
    power = meter_power_kw(spec, ts=mid, outdoor_c=outdoor_c, left_on=left_on, step_up=step_up)
    jitter = 1.0 + NOISE_REL * noise.gauss(*key, "kwh", int(ts.timestamp()))
    hours = step.total_seconds() / 3600.0
    return round(max(0.0, power * hours * jitter), 3)
