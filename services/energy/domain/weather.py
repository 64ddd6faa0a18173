"""The town's outdoor temperature, as the energy service's forecasts learn it.

A town names one device whose readings (metric ``temperature_c``) are the outdoor temperature
(`EnergySettings.energy_temperature_device`). The service keeps its recent readings here, and
each meter's forecaster learns every reading together with the temperature observed at that
time (the latest reading at or before it, if recent enough): what the building consumed in what
weather. Forecasts then use only what has been observed (`shared.ml.dayahead`): the temperature
at the same hour the day before. Without such a device, nothing changes.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from datetime import datetime, timedelta

from shared.schemas import Reading

METRIC = "temperature_c"
# An older reading no longer says what the weather is (a sensor that stopped reporting).
MAX_AGE = timedelta(hours=3)
# Kept for meters whose readings arrive late (a gateway's backlog) and for replays.
KEEP = timedelta(days=8)


class OutdoorTemperature:
    """Recent outdoor temperature readings of one device, by time.

    >>> from datetime import UTC
    >>> t0 = datetime(2026, 1, 5, tzinfo=UTC)
    >>> w = OutdoorTemperature()
    >>> w.observe([Reading(ts=t0, metric="temperature_c", value=4.5)])
    >>> w.at(t0 + timedelta(minutes=40)), w.at(t0 - timedelta(minutes=1)), w.at(t0 + MAX_AGE * 2)
    (4.5, None, None)
    """

    def __init__(self) -> None:
        self._times: list[datetime] = []
        self._values: dict[datetime, float] = {}

    def observe(self, readings: list[Reading]) -> None:
        for r in readings:
            if r.metric != METRIC:
                continue
            if r.ts not in self._values:
                insort(self._times, r.ts)
            self._values[r.ts] = r.value
        if self._times:
            cut = bisect_right(self._times, self._times[-1] - KEEP)
            for ts in self._times[:cut]:
                del self._values[ts]
            del self._times[:cut]

    def at(self, ts: datetime) -> float | None:
        """The temperature observed at ``ts``: the latest reading at or before it, if recent."""
        i = bisect_right(self._times, ts)
        if not i:
            return None
        seen = self._times[i - 1]
        return self._values[seen] if ts - seen <= MAX_AGE else None
