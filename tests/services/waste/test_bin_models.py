"""The bin's fill-rate model is a setting: a town swaps in any River regressor, and time to full
follows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from river import compose

from services.waste.domain.bin import BinRow, WasteProcessor
from services.waste.settings import WasteSettings
from shared.ml.registry import ModelSpec
from shared.schemas import Reading

pytestmark = pytest.mark.unit

TREE = '{"path": "river.tree.HoeffdingTreeRegressor", "params": {"leaf_prediction": "mean"}}'
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
RATE = 1.0  # points per hour


def _readings(days: int) -> list[Reading]:
    """A bin filling at RATE from 5%, emptied at 85%, read every 15 minutes."""
    out, level = [], 5.0
    for i in range(days * 96):
        out.append(Reading(ts=T0 + timedelta(minutes=15 * i), metric="fill_pct", value=level))
        level = 5.0 if level >= 85.0 else level + RATE / 4
    return out


def test_the_fill_model_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWNPULSE_WASTE_FILL_MODEL", TREE)
    spec = WasteSettings(dev_mode=True).waste_fill_model
    assert spec == ModelSpec.model_validate_json(TREE)


def test_a_swapped_in_river_regressor_predicts_time_to_full() -> None:
    proc = WasteProcessor(fill_model=ModelSpec.model_validate_json(TREE))
    state = proc.new_state("b1")
    assert isinstance(state.rates, compose.Pipeline)
    rows = proc.process(state, device_id="b1", readings=_readings(6)).rows
    assert type(state.rates["HoeffdingTreeRegressor"]).__name__ == "HoeffdingTreeRegressor"
    bins = [r for r in rows if isinstance(r, BinRow)]
    assert len(bins) == 6 * 96
    # The last days: time to full is the level's distance to 80% at the learnt rate.
    checked = 0
    for r in bins[-2 * 96 :]:
        if r.level < 70.0 and r.full_at is not None:
            hours = (r.full_at - r.ts) / timedelta(hours=1)
            assert hours == pytest.approx((80.0 - r.level) / RATE, rel=0.1)
            checked += 1
    assert checked > 50
    # The daily table of rates is the model's too, one value per weekday and hour.
    table = next(r.rates for r in reversed(bins) if r.rates is not None)
    assert table is not None and len(table) == 7 and all(len(row) == 24 for row in table)
    assert all(v == pytest.approx(RATE, rel=0.1) for row in table for v in row if v is not None)


def test_model_version_follows_the_fill_model() -> None:
    tree = ModelSpec.model_validate_json(TREE)
    default, swapped = WasteProcessor(), WasteProcessor(fill_model=tree)
    assert default.model_version != swapped.model_version
    assert "shared.ml.weekly.WeeklyProfile" in default.model_version
    assert WasteProcessor(fill_model=tree).model_version == swapped.model_version


def test_a_model_that_is_no_regressor_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="is not a regressor"):
        WasteProcessor(fill_model=ModelSpec(path="river.anomaly.HalfSpaceTrees"))


@pytest.mark.parametrize("every_min", [15, 60, 120, 240])
def test_bins_reporting_hourly_or_every_few_hours_learn_their_rate(every_min: int) -> None:
    """A rate needs two hours' levels, not two readings an hour: a bin read every hour or every
    few hours (common on LoRaWAN, to save its battery) learns the same rate and time to full as
    one read every 15 minutes."""
    step = timedelta(minutes=every_min)
    readings, level = [], 5.0
    for i in range(21 * 24 * 60 // every_min):
        readings.append(Reading(ts=T0 + i * step, metric="fill_pct", value=level))
        level = 5.0 if level >= 85.0 else level + RATE * every_min / 60
    proc = WasteProcessor()
    state = proc.new_state("b1")
    rows = [r for r in proc.process(state, device_id="b1", readings=readings).rows]
    bins = [r for r in rows if isinstance(r, BinRow)]
    # Most hours of three weeks teach a rate (collections and the hours around them do not).
    assert state.rate_samples > 0.7 * 21 * 24
    checked = 0
    for r in bins[-len(bins) // 7 :]:
        if r.level < 70.0 and r.full_at is not None:
            hours = (r.full_at - r.ts) / timedelta(hours=1)
            assert hours == pytest.approx((80.0 - r.level) / RATE, rel=0.15)
            checked += 1
    assert checked >= 5
