"""Synthetic outdoor temperature for an alpine-foothill town (climate close to Annecy)."""

from __future__ import annotations

import math
from datetime import datetime

from townpulse.simulator import noise
from townpulse.simulator.calendar_fr import local_hour, to_local

ANNUAL_MEAN_C = 11.5
ANNUAL_AMPLITUDE_C = 9.5
DAILY_AMPLITUDE_C = 4.5
COLDEST_DAY_OF_YEAR = 15
WARMEST_HOUR = 15.0
# Weather fronts move on a scale of days; a smaller, faster term adds cloudy/sunny hours.
FRONT_PERIOD_S = 3 * 86_400.0
FRONT_AMPLITUDE_C = 3.0
SHOWER_PERIOD_S = 6 * 3_600.0
SHOWER_AMPLITUDE_C = 0.8


def outdoor_temp_c(ts: datetime, *, seed: int) -> float:
    """Outdoor air temperature in the town at instant `ts`.

    Parameters
    ----------
    ts
        Timezone-aware instant.
    seed
        Town seed; the same seed gives the same weather.

    Returns
    -------
    float
        Seasonal cycle (coldest mid-January), daily cycle (warmest mid-afternoon) and
        smooth weather noise, in degrees Celsius.

    Examples
    --------
    >>> from datetime import UTC
    >>> winter = outdoor_temp_c(datetime(2026, 1, 15, 3, tzinfo=UTC), seed=1)
    >>> summer = outdoor_temp_c(datetime(2026, 7, 15, 13, tzinfo=UTC), seed=1)
    >>> winter < 8 < 15 < summer
    True
    """
    local = to_local(ts)
    day_of_year = local.timetuple().tm_yday + local_hour(local) / 24.0
    seasonal = ANNUAL_MEAN_C - ANNUAL_AMPLITUDE_C * math.cos(
        2 * math.pi * (day_of_year - COLDEST_DAY_OF_YEAR) / 365.25
    )
    daily = DAILY_AMPLITUDE_C * math.cos(2 * math.pi * (local_hour(local) - WARMEST_HOUR) / 24.0)
    epoch = ts.timestamp()
    fronts = FRONT_AMPLITUDE_C * noise.smooth(seed, "front", x=epoch, period=FRONT_PERIOD_S)
    showers = SHOWER_AMPLITUDE_C * noise.smooth(seed, "shower", x=epoch, period=SHOWER_PERIOD_S)
    return seasonal + daily + fronts + showers
