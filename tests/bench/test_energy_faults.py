"""The fault benchmark's injection: fixed seeds, sizes relative to the building's own hour of
the week, labels where the faults are."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from bench.energy_faults import (
    CALENDAR,
    KINDS,
    MIN_GAP,
    PER_KIND_AND_YEAR,
    WARMUP_END,
    BaselineProcessor,
    SeasonalMedian,
    inject,
    openings,
    schedule,
    slot_of,
    summarise,
    targets,
    typical_levels,
)
from services.alerts.domain.replay import alerts_of
from services.energy.domain.meter import OPEN_AFTER
from services.energy.domain.replay import alert_events, meter_processor
from shared.runtime.cadence import readings_for

pytestmark = pytest.mark.unit

H = timedelta(hours=1)


def _building() -> dict[datetime, float]:
    """Two years of hourly readings: 10 kWh on weekday working hours, 2 otherwise."""
    t, end = datetime(2018, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC)
    out = {}
    while t < end:
        local = t.astimezone(CALENDAR.tz)
        out[t] = 10.0 if local.weekday() < 5 and 8 <= local.hour < 18 else 2.0
        t += H
    return out


def test_the_schedule_is_fixed_complete_and_spread_out() -> None:
    series = _building()
    faults = schedule("b-test", 2019, series)
    assert faults == schedule("b-test", 2019, series)  # a fixed seed
    assert faults != schedule("b-other", 2019, series)
    assert sorted(f.kind for f, _ in faults) == sorted(KINDS * PER_KIND_AND_YEAR)
    for (a, at), (_, bt) in itertools.pairwise(faults):
        assert bt - (at + a.duration) >= MIN_GAP - H
    for f, at in faults:
        assert at.year == 2019 and (at + f.duration).year == 2019
        if f.kind == "left_on":
            local = at.astimezone(CALENDAR.tz)
            assert local.hour == 20 and (not f.weekend or local.weekday() == 4)


def test_sizes_are_relative_to_the_typical_level_of_the_hour_of_the_week() -> None:
    series = _building()
    typical = typical_levels(series)
    faults = schedule("b-test", 2019, series)
    injected, labels = inject(series, typical, faults)
    assert len(labels) == len(faults)
    for (fault, start), label in zip(faults, labels, strict=True):
        assert (label.start, label.kind) == (start, fault.kind)
        ts = label.start
        t = typical[slot_of(ts)]
        got, was = injected[ts], series[ts]
        if fault.kind in ("left_on", "spike"):
            assert got == pytest.approx(was + fault.size * t, abs=1e-3)
        elif fault.kind == "outage":
            assert got == 0.0
        elif fault.kind == "step":
            assert got == pytest.approx(was * (1 + fault.size), abs=1e-3)
        elif fault.kind == "drift":
            assert injected[label.end] == pytest.approx(series[label.end] * 1.4, abs=1e-3)
    outside = [ts for ts in series if not any(lab.start <= ts <= lab.end for lab in labels)]
    assert all(injected[ts] == series[ts] for ts in outside)


def test_a_baseline_goes_through_the_services_episode_rules() -> None:
    series = _building()
    t0 = datetime(2018, 3, 6, 1, tzinfo=UTC)  # a Tuesday night, after nine weeks
    faulty = {ts: v + (30.0 if t0 <= ts < t0 + 4 * H else 0.0) for ts, v in series.items()}
    short = sorted((ts, v) for ts, v in faulty.items() if ts < t0 + 48 * H)
    processor = BaselineProcessor(SeasonalMedian, calendar=CALENDAR)
    opened, _ = alerts_of(alert_events(short, device_id="b", processor=processor))
    # The service's opening delay, in hourly readings: the alert opens on the last of them.
    opens = t0 + (readings_for(OPEN_AFTER, H) - 1) * H
    assert [(o.kind, o.opened_at) for o in opened] == [("energy.consumption_off_hours", opens)]


def test_sharing_the_warm_up_gives_what_a_run_from_the_start_gives() -> None:
    clean = {ts: v for ts, v in _building().items() if datetime(2018, 11, 1, tzinfo=UTC) <= ts}
    clean = {ts: v for ts, v in clean.items() if ts < datetime(2019, 2, 1, tzinfo=UTC)}
    t0 = datetime(2019, 1, 15, 1, tzinfo=UTC)
    injected = {ts: v * (3 if t0 <= ts < t0 + 6 * H else 1) for ts, v in clean.items()}
    faulty, quiet = openings(injected, clean, meter_processor(calendar=CALENDAR), "b")

    def alone(series: dict[datetime, float]) -> list[datetime]:
        events = alert_events(
            sorted(series.items()), device_id="b", processor=meter_processor(calendar=CALENDAR)
        )
        return [o.opened_at for o in alerts_of(events)[0] if o.opened_at >= WARMUP_END]

    assert faulty == alone(injected) and quiet == alone(clean)
    assert faulty, "the fault should alert: a test that cannot fail proves nothing"


def _scored(recall: float, clean: float) -> dict[str, object]:
    by_kind = {
        k: {"events": 18, "detected": 0, "recall": recall, "median_delay_h": 2.0} for k in KINDS
    }
    return {
        "recall": recall,
        "false_alerts_per_device_month": 0.5,
        "clean_alerts_per_building_month": clean,
        "by_kind": by_kind,
    }


def test_the_report_gives_means_over_buildings_and_the_targets() -> None:
    from bench.report import energy_faults_section

    buildings = {
        b: {"methods": {"service": _scored(r, c), "stuck_rule": _scored(0.0, 0.0)}}
        for b, r, c in (("UCam_Building_b0", 0.5, 1.0), ("UCam_Building_b5", 1.0, 0.5))
    }
    summary = summarise(buildings)
    assert summary["service"]["by_kind"]["left_on"]["recall"] == 0.75
    assert summary["service"]["clean_alerts_per_building_month"] == 0.75
    checks = targets(summary)
    assert checks["recall_left_on"]["met"] is False and checks["recall_spike"]["met"] is True
    assert checks["clean_alerts_per_building_month"]["met"] is True
    setup = {
        "buildings": list(buildings),
        "warmup": "2018",
        "judged_years": [2019],
        "per_kind_and_year": 6,
        "seed": 24,
        "kinds": list(KINDS),
        "baseline_band": {"k_robust_sd": 6.0, "floor_of_expected": 0.15},
        "stuck_hours": 3,
        "labels": "bench/results/energy_faults_labels",
    }
    text = "\n".join(
        energy_faults_section(
            {"setup": setup, "summary": summary, "targets": checks, "buildings": buildings}
        )
    )
    assert "| `service` | 75.0% (2.0 h) |" in text
    assert "| recall_left_on | 0.8 | 0.75 | **not met** |" in text
    assert "| b5 | `service` | 100.0% |" in text
