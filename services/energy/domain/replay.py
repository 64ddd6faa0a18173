"""A meter's history through the energy service's own processor: the alert events it would emit.

The one entry point for measuring the service as shipped (`townpulse evaluate --labels`, the
fault benchmark): the service's class (`EnergyProcessor`) with the service's defaults (those of
`EnergySettings`: the benchmarked forecaster, no external scorer), fed one reading per message
as the runtime feeds it (`shared.runtime.processor.replay`). The alerts service turns these
events into alerts with `services.alerts.domain.replay.alerts_of`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from services.energy.domain.meter import FORECASTER, METRIC, EnergyProcessor, MeterState
from shared.ml.calendar import TOWN, TownCalendar
from shared.ml.registry import ModelSpec
from shared.runtime.processor import replay
from shared.schemas import AlertEvent, Reading


def meter_processor(
    *,
    calendar: TownCalendar = TOWN,
    anomaly_scorer: ModelSpec | None = None,
    forecaster: ModelSpec = FORECASTER,
    temperature_device: str | None = None,
) -> EnergyProcessor:
    """The processor the service runs (services/energy/app.py builds it from its settings)."""
    return EnergyProcessor(
        calendar=calendar,
        anomaly_scorer=anomaly_scorer,
        forecaster=forecaster,
        temperature_device=temperature_device,
    )


def alert_events(
    series: Iterable[tuple[datetime, float]],
    *,
    device_id: str,
    processor: EnergyProcessor | None = None,
    state: MeterState | None = None,
) -> list[AlertEvent]:
    """The episode events (start and end) a meter's readings give, one `(ts, kWh)` a message.

    `processor` defaults to `meter_processor()` (the service's defaults, the town calendar);
    `state` is the meter's state to go on from (updated in place), a new one by default.
    """
    proc = meter_processor() if processor is None else processor
    messages = ([Reading(ts=ts, metric=METRIC, value=value)] for ts, value in series)
    return replay(proc, device_id=device_id, messages=messages, state=state)
