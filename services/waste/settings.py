from __future__ import annotations

from typing import Annotated

from pydantic import Field

from services.waste.domain.bin import FILL_MODEL
from shared.factors import FactorOverrides
from shared.ml.registry import ModelSpec
from shared.settings import StreamServiceSettings


class WasteSettings(StreamServiceSettings):
    http_port: int = 18104
    instance: str = "waste-1"
    group_id: str = "waste"
    # Device states kept in memory (each ~16 kB: a week of hourly fill rates and a few
    # trackers, docs/runtime.md); the rest wait in their checkpoints.
    max_devices: int = 2000
    # The bins' fill-rate model, behind time to full (TOWNPULSE_WASTE_FILL_MODEL, JSON): any
    # River regressor, fed the hour's calendar features, e.g. {"path":
    # "river.tree.HoeffdingTreeRegressor", "params": {}}; the default is the weekday x hour
    # profile. See docs/waste.md.
    waste_fill_model: ModelSpec = FILL_MODEL
    # A bin at or above this level is "full": it must be collected in the next round.
    full_pct: float = 80.0
    # Collection rounds start at this local hour, on these weekdays (0 is Monday; JSON list,
    # e.g. TOWNPULSE_ROUND_WEEKDAYS='[0,1,2,3,4]'): a plan collects the bins full before the
    # next round day (Friday's, those full before Monday's round). Monday, Wednesday and Friday
    # by default: daily rounds of the few bins due drive more than sector rounds on a fixed
    # schedule (docs/waste.md, "Simulated town").
    round_hour: float = Field(default=6.0, ge=0, lt=24)
    round_weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default=[0, 2, 4], min_length=1, max_length=7
    )
    # The depot the trucks leave from, when the plan request does not say ("lat,lon").
    depot: str | None = None
    # The routing solver stops improving after this long (it is a bound on response time).
    plan_time_limit_s: float = 2.0
    # Streets are not straight lines: haversine distance times this (urban circuity ~1.3).
    road_detour: float = 1.3
    # What one truck can do in a round (docs/waste.md, "Trucks"): its crew's shift, its mean
    # speed between bins in town, the time to empty one container, and, if its load is what
    # limits it, how many bins it can empty (None: the shift is the limit). A plan request may
    # set its own shift and capacity.
    shift_h: float = Field(default=7.0, gt=0, le=24)
    truck_speed_kmh: float = Field(default=20.0, gt=0, le=90)
    stop_min: float = Field(default=1.0, ge=0, le=60)
    truck_bins: int | None = Field(default=None, ge=1, le=5000)
    # Trucks the town sends on a round (a plan request's `vehicles` overrides it): the day's
    # plan recorded for the monthly report is planned with these.
    round_trucks: int = Field(default=1, ge=1, le=50)
    # The fixed schedule the plans replace, for the monthly report's comparison: how many times
    # a week it empties each bin, on average (docs/report.md). 1.0 by default, the once-a-week
    # round (C1) of the least collected streams, so that savings are not overstated; the
    # simulated town's is 1.3 (`townpulse up` sets it). Recorded with each day's plan.
    fixed_visits_per_week: float = Field(default=1.0, gt=0, le=14)
    # The town's own emission factors (TOWNPULSE_FACTORS, as the operator API's): the CO2 of
    # the plan's km is `refuse_truck_kg_co2e_per_km` of the shared table (shared/factors).
    factors: FactorOverrides = Field(default_factory=dict)
