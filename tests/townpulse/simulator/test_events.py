"""Each injected event changes its device's signal inside its window, and only there."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from statistics import mean

import pytest

from tests.townpulse.simulator.helpers import (
    CENTRE_ROAD,
    DAILY_BIN,
    MARKET_BIN,
    OFFICE,
    ROAD,
    SMALL_TOWN,
    WEEKLY_BIN,
    Series,
    series,
    values,
)
from townpulse.simulator.calendar_fr import to_local, utc_at_local
from townpulse.simulator.events import EVENT_KINDS, LabelledEvent, parse_kinds, schedule_events
from townpulse.simulator.town import Domain, build_town

pytestmark = pytest.mark.unit

TUESDAY = date(2026, 3, 3)
RUN_START = utc_at_local(date(2026, 3, 2), 0.0)
RUN_END = RUN_START + timedelta(days=4)
STEP = timedelta(minutes=15)


@pytest.fixture(scope="module")
def baseline() -> Series:
    return series(SMALL_TOWN, RUN_START, RUN_END)


def _event(
    kind: str, device_id: str | None, start_h: float, end_h: float, day: date = TUESDAY
) -> LabelledEvent:
    return LabelledEvent(kind, device_id, utc_at_local(day, start_h), utc_at_local(day, end_h))


def _assert_same_outside(
    base: Series, run: Series, event: LabelledEvent, *, settled_after: datetime | None = None
) -> None:
    """Identical readings before the event and after it (or after `settled_after`)."""
    after = settled_after or event.end
    outside = [k for k in base if k[1] < event.start or k[1] >= after]
    assert outside
    assert [run.get(k) for k in outside] == [base[k] for k in outside]


def test_meter_left_on_keeps_the_night_as_busy_as_the_day(baseline: Series) -> None:
    event = _event("meter_left_on", OFFICE.id, 18.0, 24.0 + 6.0)
    run = series(SMALL_TOWN, RUN_START, RUN_END, [event])
    inside = values(run, OFFICE.id, "energy_kwh", event.start, event.end)
    normal = values(baseline, OFFICE.id, "energy_kwh", event.start, event.end)
    assert all(a >= b for a, b in zip(inside, normal, strict=True))
    assert mean(inside) > 2 * mean(normal)
    working_day = values(
        baseline, OFFICE.id, "energy_kwh", *(utc_at_local(TUESDAY, h) for h in (10.0, 12.0))
    )
    assert mean(inside) > 0.7 * mean(working_day)
    _assert_same_outside(baseline, run, event)


def test_meter_step_up_adds_a_constant_load(baseline: Series) -> None:
    event = _event("meter_step_up", OFFICE.id, 10.0, 16.0)
    run = series(SMALL_TOWN, RUN_START, RUN_END, [event])
    inside = values(run, OFFICE.id, "energy_kwh", event.start, event.end)
    normal = values(baseline, OFFICE.id, "energy_kwh", event.start, event.end)
    assert all(a > b + 3.0 for a, b in zip(inside, normal, strict=True))
    _assert_same_outside(baseline, run, event)


def test_meter_stuck_repeats_its_last_value(baseline: Series) -> None:
    event = _event("meter_stuck", OFFICE.id, 9.0, 15.0)
    run = series(SMALL_TOWN, RUN_START, RUN_END, [event])
    inside = values(run, OFFICE.id, "energy_kwh", event.start, event.end)
    last_good = baseline[OFFICE.id, event.start - STEP]["energy_kwh"]
    assert inside == [last_good] * 24
    assert len(set(values(baseline, OFFICE.id, "energy_kwh", event.start, event.end))) > 5
    _assert_same_outside(baseline, run, event)


def test_meter_silent_sends_nothing(baseline: Series) -> None:
    event = _event("meter_silent", OFFICE.id, 9.0, 12.0)
    run = series(SMALL_TOWN, RUN_START, RUN_END, [event])
    assert values(run, OFFICE.id, "energy_kwh", event.start, event.end) == []
    assert len(values(run, ROAD.id, "vehicles", event.start, event.end)) == 12
    _assert_same_outside(baseline, run, event)


def test_bin_fast_fill_fills_the_bin_abnormally_fast(baseline: Series) -> None:
    event = _event("bin_fast_fill", DAILY_BIN.id, 9.0, 12.0)
    run = series(SMALL_TOWN, RUN_START, RUN_END, [event])
    window = (event.start - STEP, event.end)
    fast = values(run, DAILY_BIN.id, "fill_pct", *window)
    normal = values(baseline, DAILY_BIN.id, "fill_pct", *window)
    assert fast[-1] - fast[0] > (normal[-1] - normal[0]) + 20
    # The extra waste stays until the next round (Wednesday 06:00) empties the bin.
    next_round = utc_at_local(TUESDAY + timedelta(days=1), 6.0)
    assert run[DAILY_BIN.id, next_round - STEP] != baseline[DAILY_BIN.id, next_round - STEP]
    _assert_same_outside(baseline, run, event, settled_after=next_round)


def test_bin_fire_makes_the_temperature_jump(baseline: Series) -> None:
    event = _event("bin_fire", WEEKLY_BIN.id, 14.0, 15.5)
    run = series(SMALL_TOWN, RUN_START, RUN_END, [event])
    hot = values(run, WEEKLY_BIN.id, "temperature_c", event.start, event.end)
    normal = values(baseline, WEEKLY_BIN.id, "temperature_c", event.start, event.end)
    assert all(a > b + 25 for a, b in zip(hot, normal, strict=True))
    assert max(hot) > 45
    _assert_same_outside(baseline, run, event)


def test_bin_stuck_repeats_the_fill_level(baseline: Series) -> None:
    event = _event("bin_stuck", DAILY_BIN.id, 8.0, 20.0)
    run = series(SMALL_TOWN, RUN_START, RUN_END, [event])
    stuck = values(run, DAILY_BIN.id, "fill_pct", event.start, event.end)
    assert set(stuck) == {baseline[DAILY_BIN.id, event.start - STEP]["fill_pct"]}
    assert len(set(values(baseline, DAILY_BIN.id, "fill_pct", event.start, event.end))) > 10
    # Temperature is another sensor: it keeps working.
    assert values(run, DAILY_BIN.id, "temperature_c", event.start, event.end) == values(
        baseline, DAILY_BIN.id, "temperature_c", event.start, event.end
    )
    _assert_same_outside(baseline, run, event)


def test_road_incident_cuts_flow_and_speed(baseline: Series) -> None:
    event = _event("road_incident", ROAD.id, 7.5, 9.0)
    run = series(SMALL_TOWN, RUN_START, RUN_END, [event])
    cut = values(run, ROAD.id, "vehicles", event.start, event.end)
    normal = values(baseline, ROAD.id, "vehicles", event.start, event.end)
    assert sum(cut) < 0.6 * sum(normal)
    slow = values(run, ROAD.id, "speed_kmh", event.start, event.end)
    usual = values(baseline, ROAD.id, "speed_kmh", event.start, event.end)
    assert mean(slow) < 0.5 * mean(usual)
    _assert_same_outside(baseline, run, event)


def test_market_day_busies_the_centre_only(baseline: Series) -> None:
    event = _event("market_day", None, 7.0, 13.0, day=TUESDAY + timedelta(days=1))
    run = series(SMALL_TOWN, RUN_START, RUN_END, [event])
    window = (event.start - STEP, event.end)
    market = values(run, MARKET_BIN.id, "fill_pct", *window)
    usual = values(baseline, MARKET_BIN.id, "fill_pct", *window)
    assert market[-1] - market[0] > 2 * (usual[-1] - usual[0]) + 5
    busy = values(run, CENTRE_ROAD.id, "vehicles", event.start, event.end)
    calm = values(baseline, CENTRE_ROAD.id, "vehicles", event.start, event.end)
    assert sum(busy) > 1.15 * sum(calm)
    # Residential devices do not notice; the centre is back to normal after the next round.
    for device in (ROAD, DAILY_BIN, OFFICE, WEEKLY_BIN):
        assert [v for k, v in run.items() if k[0] == device.id] == [
            v for k, v in baseline.items() if k[0] == device.id
        ]
    next_round = utc_at_local(TUESDAY + timedelta(days=2), 6.5)  # Thursday round
    _assert_same_outside(baseline, run, event, settled_after=next_round)


def test_events_validate_their_fields() -> None:
    t = datetime(2026, 3, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown event kind"):
        LabelledEvent("meter_exploded", "meter-001", t, t + STEP)
    with pytest.raises(ValueError, match="end after"):
        LabelledEvent("bin_fire", "bin-001", t, t)
    with pytest.raises(ValueError, match="timezone-aware"):
        LabelledEvent("bin_fire", "bin-001", t.replace(tzinfo=None), t + STEP)
    assert LabelledEvent("bin_fire", "bin-001", t, t + STEP).to_json() == {
        "kind": "bin_fire",
        "device_id": "bin-001",
        "start": "2026-03-02T00:00:00Z",
        "end": "2026-03-02T00:15:00Z",
    }


def test_parse_kinds() -> None:
    assert parse_kinds("all") == list(EVENT_KINDS)
    assert parse_kinds(" bin_fire ,road_incident") == ["bin_fire", "road_incident"]
    with pytest.raises(ValueError, match="nope"):
        parse_kinds("bin_fire,nope")


def test_schedule_events_is_deterministic_and_fits_the_window() -> None:
    town = build_town(lighting=20, seed=3)
    start = datetime(2026, 3, 2, 0, 7, tzinfo=UTC)
    end = start + timedelta(days=3)
    kinds = [*EVENT_KINDS, "bin_fire", "bin_fire"]
    events = schedule_events(town, kinds=kinds, start=start, end=end, seed=9)
    assert events == schedule_events(town, kinds=kinds, start=start, end=end, seed=9)
    assert events != schedule_events(town, kinds=kinds, start=start, end=end, seed=10)
    assert sorted(e.kind for e in events) == sorted(kinds)
    assert [e.start for e in events] == sorted(e.start for e in events)
    fires = [e.device_id for e in events if e.kind == "bin_fire"]
    assert len(set(fires)) == 3  # spread over different bins
    for e in events:
        assert start <= e.start < e.end <= end
        assert e.start.minute % 15 == 0 and e.end.minute % 15 == 0
        if e.kind == "market_day":
            assert e.device_id is None
            assert (to_local(e.start).hour, to_local(e.start).minute) == (7, 0)
            continue
        assert e.device_id is not None
        device = town.get(e.device_id)
        assert (
            device.domain
            is {
                "meter": Domain.ENERGY,
                "bin": Domain.WASTE,
                "road": Domain.TRAFFIC,
                "lamp": Domain.LIGHTING,
                "lighting": Domain.LIGHTING,
            }[e.kind.split("_")[0]]
        )
        if e.kind == "meter_left_on":
            assert device.metadata["building_type"] != "housing"


def test_schedule_events_clips_to_a_short_window() -> None:
    town = build_town(energy=2, waste=2, traffic=2, lighting=2, seed=1)
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    end = start + timedelta(hours=1)
    events = schedule_events(town, kinds=EVENT_KINDS, start=start, end=end, seed=1)
    assert len(events) == len(EVENT_KINDS)
    assert all(start <= e.start < e.end <= end for e in events)


def test_no_fire_in_a_bin_whose_sensor_measures_no_temperature() -> None:
    town = build_town(energy=0, waste=6, traffic=0, seed=3, lorawan_bins=2 / 3)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    events = schedule_events(
        town, kinds=["bin_fire"] * 6, start=start, end=start + timedelta(days=2), seed=1
    )
    assert {e.device_id for e in events} == {"bin-001", "bin-004"}  # the two on MQTT
