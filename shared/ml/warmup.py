"""What a device's model has seen, by day type and hour: when it may alert, and whether a
steady value is plausible for it.

A profile learnt from one Monday, or from a weekend only, cries wolf on the next working day
(the first run of the living town raised 21 false traffic alerts on the Monday after a backfill
that held only a weekend). A model may alert on a reading only once the reading's slot, its
day type (working or not) and hour of the local day, has been seen on `WARM_UP_DAYS` days;
until every slot the device reports in has, the device is "learning" (`WarmUp.learning_until`).

The same slots count how often a reading repeats the previous one exactly. A sensor whose value
normally holds (a pressure, a bin at night, a meter of coarse resolution) repeats often; a run
of repeats is then no sign of a stuck sensor, and `implausibly_steady` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.ml.calendar import TOWN, WORKDAY, TownCalendar

# Days a slot must have been seen on before a model alerts in it. One day is that day; with two
# nothing says which is typical; from three on, the profile's level and its day-to-day spread
# are estimates (the weekly profile has shrunk towards its day type's by then). Two weeks of
# history hold three of each: ten working days, four non-working ones.
WARM_UP_DAYS = 3
# A sensor that repeats its previous value on more than one reading in five in a slot is one
# whose value normally holds there: a run of repeats is no fault in that slot. A varying meter
# repeats on well under 1% of its readings.
STEADY_REPEATS = 0.2
# A run of identical readings is a stuck sensor only if the device's own repeat rate in that
# slot makes it this unlikely (the rate to the power of the run's repeats): one chance in a
# thousand, the detectors' tail.
STUCK_TAIL = 1e-3
# Days per week of each day type, to say roughly when a learning device will be ready.
_DAYS_PER_WEEK = {True: 2.0, False: 5.0}  # keyed by "non-working"

Slot = tuple[bool, int]  # (non-working day, local hour)


@dataclass
class SlotStats:
    days: int = 0
    last_day: int = -1  # the local date's ordinal of the last reading counted
    readings: int = 0
    repeats: int = 0


@dataclass
class WarmUp:
    """Per device: the days, readings and exact repeats seen in each (day type, hour) slot.

    >>> from datetime import UTC
    >>> w, t0 = WarmUp(), datetime(2026, 3, 2, 12, tzinfo=UTC)  # a Monday
    >>> day = timedelta(days=1)
    >>> [w.ready(t0 + k * day) or w.learn_one(t0 + k * day) for k in range(4)]
    [None, None, None, True]
    >>> w.ready(t0 + 5 * day)  # a Saturday: never seen
    False
    """

    calendar: TownCalendar = TOWN
    slots: dict[Slot, SlotStats] = field(default_factory=dict)
    # A model restored from a checkpoint written before warm-ups existed: it has learnt for as
    # long as it ran, so it may alert; its repeats are learnt afresh (`repeat_fraction`).
    trusted: bool = False

    def slot(self, ts: datetime) -> Slot:
        kind, hour = self.calendar.key(ts, slot_minutes=60)
        return kind != WORKDAY, hour

    def learn_one(self, ts: datetime, *, repeated: bool = False) -> None:
        """Count a reading the model learnt (`repeated`: it equals the previous one)."""
        stats = self.slots.get(key := self.slot(ts))
        if stats is None:
            stats = self.slots[key] = SlotStats()
        day = ts.astimezone(self.calendar.tz).toordinal()
        if day != stats.last_day:
            stats.days += 1
            stats.last_day = day
        stats.readings += 1
        stats.repeats += repeated

    def ready(self, ts: datetime) -> bool:
        """Whether the model has seen `ts`'s slot on enough days to alert there."""
        if self.trusted:
            return True
        stats = self.slots.get(self.slot(ts))
        if stats is None:
            return False
        # Days before this one: today's first readings in the slot teach, they do not vouch.
        today = stats.last_day == ts.astimezone(self.calendar.tz).toordinal()
        return stats.days - today >= WARM_UP_DAYS

    def repeat_fraction(self, ts: datetime) -> float:
        """The share of readings repeating the previous one in `ts`'s slot; 1.0 before the
        slot is warm (nothing says yet that a steady value is odd there)."""
        stats = self.slots.get(self.slot(ts))
        if stats is None or stats.days < WARM_UP_DAYS or not self.ready(ts):
            return 1.0
        return stats.repeats / stats.readings

    def learning_until(self, ts: datetime) -> datetime | None:
        """None once every slot the device reports in is warm; else, roughly, when it will be
        if it goes on reporting as it does (from `ts`, its latest reading).

        A day type the device has never reported on counts as wholly unseen.
        """
        if self.trusted:
            return None
        days_needed = 0.0
        for non_working, per_week in _DAYS_PER_WEEK.items():
            seen = [s.days for (nw, _), s in self.slots.items() if nw == non_working]
            missing = WARM_UP_DAYS - (min(seen) if seen else 0)
            if missing > 0:
                days_needed = max(days_needed, missing * 7.0 / per_week)
        if days_needed == 0:
            return None
        return ts + timedelta(days=math.ceil(days_needed))


def implausibly_steady(warm: WarmUp, ts: datetime, *, run: int, needed: int) -> bool:
    """Whether `run` identical readings in a row are a stuck sensor: they cover `needed`
    readings (the rule's duration), the slot is warm, the device's value does not normally hold
    there, and its own repeat rate there makes such a run unlikely (`STUCK_TAIL`).

    >>> from datetime import UTC
    >>> w, t0 = WarmUp(), datetime(2026, 3, 2, 12, tzinfo=UTC)
    >>> for k in range(12):
    ...     w.learn_one(t0 + timedelta(days=k // 4, minutes=k % 4 * 15), repeated=False)
    >>> t = t0 + timedelta(days=7)
    >>> implausibly_steady(w, t, run=8, needed=8), implausibly_steady(w, t, run=7, needed=8)
    (True, False)
    >>> for k in range(12):  # the same slot mostly repeats: a steady sensor
    ...     w.learn_one(t0 + timedelta(days=k // 4), repeated=True)
    >>> implausibly_steady(w, t, run=100, needed=8)
    False
    """
    if run < needed or not warm.ready(ts):
        return False
    stats = warm.slots.get(warm.slot(ts))
    if stats is None or warm.repeat_fraction(ts) > STEADY_REPEATS:
        return False
    # Smoothed, so that a slot that never repeated yet does not make any run impossible.
    rate = (stats.repeats + 1) / (stats.readings + 2)
    return rate ** (run - 1) <= STUCK_TAIL
