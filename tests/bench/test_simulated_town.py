"""The simulated town's benchmark: how alerts are matched to the labelled events, and that the
events and readings it judges are those `make up`'s simulator injects and publishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bench.simulated_town import (
    CONTEXT_KINDS,
    STARTS,
    device_messages,
    figures,
    judge,
    town_run,
)
from services.alerts.domain.replay import Opened
from townpulse.simulator import cli as cli_module
from townpulse.simulator.events import LabelledEvent, affects
from townpulse.simulator.runner import RunnerConfig, RunStats, plan_events, plan_window, town_of
from townpulse.simulator.town import Domain, Zone, build_town

pytestmark = pytest.mark.unit

H = timedelta(hours=1)
T0 = datetime(2026, 3, 10, 6, tzinfo=UTC)
TOWN = build_town(energy=2, waste=6, traffic=2, seed=5)


def _opened(device_id: str, at: datetime, kind: str = "x.kind") -> Opened:
    return Opened(device_id, kind, at, "warning")


def _bin(*, central: bool) -> str:
    return next(
        d.id
        for d in TOWN.of(Domain.WASTE)
        if (getattr(d.spec, "zone", None) in (Zone.CENTRE, Zone.MARKET)) is central
    )


def test_an_alert_in_the_window_detects_the_event_on_its_device_only() -> None:
    stuck = LabelledEvent("meter_stuck", "meter-001", T0, T0 + 6 * H)
    alerts = [
        _opened("meter-001", T0 + 2 * H, "energy.meter_stuck"),
        _opened("meter-002", T0 + 2 * H),  # same time, another meter: false
        _opened("meter-001", T0 + 3 * H),  # a second alert on the event: matches, not first
    ]
    judged, detections = judge(alerts, [stuck], TOWN)
    assert [j.role for j in judged] == ["detection", "false", "detection"]
    (d,) = detections
    assert d.first_alert == T0 + 2 * H and d.delay_h == 2.0 and d.domain == "energy"
    assert d.alert_kinds == ("energy.meter_stuck", "x.kind") and d.right_kind
    f = figures(judged, detections)
    assert f["all"]["alerts"] == 3 and f["all"]["false"] == 1
    assert f["all"]["precision"] == round(2 / 3, 4) and f["all"]["recall"] == 1.0
    assert f["by_domain"]["energy"]["median_delay_h"] == 2.0
    assert f["by_event_kind"]["meter_stuck"]["right_kind"] == 1
    # Detected, but by an alert of another kind: a detection, not the right story.
    (other,) = judge([_opened("meter-001", T0 + H, "energy.consumption_low")], [stuck], TOWN)[1]
    assert other.first_alert == T0 + H and not other.right_kind
    assert f["false_by_kind"] == {"x.kind": 1}


def test_an_alert_after_the_event_is_its_aftermath_not_a_detection() -> None:
    fire = LabelledEvent("bin_fire", "bin-001", T0, T0 + H)
    after = [_opened("bin-001", T0 + 5 * H)]
    judged, detections = judge(after, [fire], TOWN, after=6 * H)
    assert [j.role for j in judged] == ["aftermath"] and detections[0].first_alert is None
    f = figures(judged, detections)
    assert (f["all"]["precision"], f["all"]["recall"]) == (1.0, 0.0)
    assert f["by_event_kind"]["bin_fire"]["median_delay_h"] is None
    # Beyond the aftermath it is false.
    judged, _ = judge([_opened("bin-001", T0 + 8 * H)], [fire], TOWN, after=6 * H)
    assert [j.role for j in judged] == ["false"]


def test_a_missed_event_counts_against_recall_in_its_own_domain() -> None:
    events = [
        LabelledEvent("road_incident", "counter-001", T0, T0 + H),
        LabelledEvent("bin_stuck", "bin-002", T0, T0 + 12 * H),
    ]
    judged, detections = judge([_opened("counter-001", T0 + 0.5 * H)], events, TOWN)
    f = figures(judged, detections)
    assert f["all"]["recall"] == 0.5
    assert f["by_domain"]["traffic"]["recall"] == 1.0
    assert f["by_domain"]["waste"]["recall"] == 0.0
    assert f["by_domain"]["waste"]["precision"] is None  # no waste alert at all


def test_the_market_explains_centre_alerts_but_owes_none() -> None:
    market = LabelledEvent("market_day", None, T0, T0 + 6 * H)
    centre, outer = _bin(central=True), _bin(central=False)
    assert affects(market, TOWN.get(centre)) and not affects(market, TOWN.get(outer))
    alerts = [_opened(centre, T0 + H), _opened(outer, T0 + H)]
    judged, detections = judge(alerts, [market], TOWN)
    assert {j.alert.device_id: j.role for j in judged} == {centre: "detection", outer: "false"}
    f = figures(judged, detections)
    assert f["all"]["precision"] == 0.5
    # Context (the simulator's label says so): no alert is owed for it, so it is out of recall
    # but reported; every other kind is a fault an operator must hear of.
    assert {"market_day"} == CONTEXT_KINDS
    assert f["all"]["events"] == 0 and f["all"]["recall"] is None
    assert f["by_event_kind"]["market_day"]["context"] is True
    assert f["by_event_kind"]["market_day"]["detected"] >= 1


def _cli_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> RunnerConfig:
    """The config `townpulse up`'s simulator command line gives, with another seed."""
    key_file = tmp_path / "admin.key"
    key_file.write_text("k" * 32)
    seen: list[RunnerConfig] = []

    def fake_run(config: RunnerConfig) -> RunStats:
        seen.append(config)
        return RunStats()

    monkeypatch.setattr(cli_module, "run", fake_run)
    app = typer.Typer()
    app.command("simulate")(cli_module.simulate)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(
        app,
        ["simulate", *cli_module.LIVING_TOWN_ARGS, "--seed", str(seed)],
        env={"ADMIN_API_KEY_FILE": str(key_file), "TOWNPULSE_RUN_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    (config,) = seen
    return config


def test_the_bench_judges_the_events_make_up_injects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOWNPULSE_MAX_AGE_S", str(16 * 24 * 3600))
    run = town_run(1)
    live = _cli_config(tmp_path, monkeypatch, seed=1)
    # The same town and history as the command line's...
    assert town_of(live) == run.town
    for field in ("backfill", "inject", "inject_after", "step", "duration", "seed"):
        assert getattr(live, field) == getattr(run.config, field), field
    start, end = plan_window(
        now=STARTS[1], backfill=live.backfill, duration=live.duration, step=live.step
    )
    assert start == run.start and end is None
    # ...and the events its run writes to the events file for the same instant.
    events = plan_events(run.town, config=live, planned=start, start=start, end=end, now=STARTS[1])
    assert tuple(events) == run.events
    assert sorted(e.kind for e in run.events) == sorted(live.inject)
    # After the warm-up, within the history the first console shows.
    assert all(start + live.inject_after <= e.start < e.end <= run.now for e in run.events)


def test_the_readings_the_bench_feeds_show_the_labelled_events() -> None:
    run = town_run(1)
    by_kind = {e.kind: e for e in run.events}
    silent = by_kind["meter_silent"]
    meter = run.town.get(silent.device_id or "")
    times = [m[0].ts for m in device_messages(run, meter)]
    assert times[0] == run.start and run.end - run.config.step < times[-1] < run.end
    assert not [t for t in times if silent.covers(t)]
    assert silent.end in times  # the meter speaks again when the event ends
    stuck = by_kind["bin_stuck"]
    fills = {
        r.value
        for message in device_messages(run, run.town.get(stuck.device_id or ""))
        for r in message
        if r.metric == "fill_pct" and stuck.covers(r.ts)
    }
    assert len(fills) == 1


def test_lorawan_devices_reach_the_processors_as_the_gateway_maps_them() -> None:
    run = town_run(2)
    meter = next(d for d in run.town.lorawan if d.lorawan is not None and d.id.startswith("m"))
    bin_ = next(d for d in run.town.lorawan if d.lorawan is not None and d.id.startswith("b"))
    first, second, *_ = device_messages(run, meter)
    # A pulse counter: the first uplink only sets the count, then each interval's kWh.
    assert {r.metric for r in first} == {"pulse_count", "battery_pct"}
    assert {"energy_kwh", "pulse_count"} <= {r.metric for r in second}
    metrics = {r.metric for m in device_messages(run, bin_) for r in m}
    assert "fill_pct" in metrics and "temperature_c" not in metrics
