"""The footprint's arithmetic: the power model, RAPL in its place when it covers the span, the
manufacture's amortised share, coverage, and bad periods refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.factors import load_factors
from shared.footprint import (
    MAX_PERIOD,
    UJ_PER_KWH,
    check_period,
    compute,
    energy,
    manufacture_kg,
    rapl_delta,
)

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)  # 720 h
F = load_factors(
    {
        "server_idle_w": 20.0,
        "server_w_per_busy_core": 5.0,
        "server_w_per_gb_memory": 0.5,
        "server_platform_share": 0.5,
        "server_manufacture_kg_co2e": 1000.0,
        "server_lifetime_years": 4.0,
        "grid_kg_co2e_per_kwh": 0.1,
    }
)


def _component(
    name: str, cpu_s: float, mean: float, peak: float, *, first: datetime, last: datetime
) -> dict[str, Any]:
    return {
        "component": name,
        "cpu_s": cpu_s,
        "mean_rss_bytes": mean,
        "peak_rss_bytes": peak,
        "samples": 10,
        "first_ts": first,
        "last_ts": last,
    }


def test_the_power_model_adds_idle_share_busy_cores_and_memory() -> None:
    e = energy(hours=100, core_hours=10, memory_gb=2, rapl_kwh=None, factors=F)
    assert e.source == "model"
    assert e.kwh_idle == pytest.approx(20 * 0.5 * 100 / 1000)
    assert e.kwh_cpu == pytest.approx(5 * 10 / 1000)
    assert e.kwh_memory == pytest.approx(0.5 * 2 * 100 / 1000)
    assert e.kwh == pytest.approx(1.0 + 0.05 + 0.1)


def test_rapl_replaces_the_model_times_the_share() -> None:
    e = energy(hours=100, core_hours=10, memory_gb=2, rapl_kwh=3.0, factors=F)
    assert e.source == "rapl"
    assert e.kwh == pytest.approx(1.5)
    assert e.kwh_rapl == 3.0


def test_manufacture_is_amortised_over_the_lifetime() -> None:
    # A whole lifetime of the whole server is its whole manufacture.
    whole = load_factors({"server_manufacture_kg_co2e": 1000.0, "server_lifetime_years": 4.0})
    assert manufacture_kg(hours=4 * 8766, factors=whole) == pytest.approx(1000.0)
    assert manufacture_kg(hours=720, factors=F) == pytest.approx(1000 * 0.5 * 720 / (4 * 8766))


def test_a_fully_sampled_month() -> None:
    rows = [
        _component("postgres", 7200.0, 2e8, 3e8, first=START, last=END - timedelta(minutes=1)),
        _component("api", 3600.0, 1e8, 2e8, first=START, last=END - timedelta(minutes=1)),
    ]
    fp = compute(start=START, end=END, components=rows, rapl=[], factors=F)
    hours = 720 - 1 / 60
    assert fp.sampled_hours == pytest.approx(hours)
    assert fp.coverage == pytest.approx(hours / 720)
    assert fp.cpu_core_hours == pytest.approx(3.0)
    assert fp.mean_memory_bytes == pytest.approx(3e8)
    kwh = (20 * 0.5 * hours + 5 * 3.0 + 0.5 * 0.3 * hours) / 1000
    assert fp.kwh == pytest.approx(kwh)
    assert fp.kg_co2e_energy == pytest.approx(kwh * 0.1)
    assert fp.kg_co2e_manufacture == pytest.approx(1000 * 0.5 * hours / (4 * 8766))
    assert fp.kg_co2e_total == pytest.approx(fp.kg_co2e_energy + fp.kg_co2e_manufacture)
    assert [c.component for c in fp.components] == ["postgres", "api"]
    assert fp.components[0].peak_rss_bytes == 300_000_000
    assert fp.factors_version == F.version
    assert fp.energy.source == "model"
    for key in ("cpu_s", "memory", "coverage", "kwh", "kg_co2e_energy", "kg_co2e_manufacture"):
        assert key in fp.method
    assert (
        "server_idle_w" in fp.method["kwh"]
        and "grid_kg_co2e_per_kwh" in fp.method["kg_co2e_energy"]
    )


def test_half_a_month_sampled_is_not_extrapolated() -> None:
    mid = START + timedelta(days=15)
    rows = [_component("kafka", 3600.0, 1e9, 1e9, first=mid, last=END)]
    fp = compute(start=START, end=END, components=rows, rapl=[], factors=F)
    assert fp.coverage == pytest.approx(0.5)
    assert fp.sampled_hours == pytest.approx(360)
    assert fp.kwh == pytest.approx((20 * 0.5 * 360 + 5 * 1 + 0.5 * 1 * 360) / 1000)


def test_rapl_counts_only_when_it_covers_the_sampled_span() -> None:
    rows = [_component("kafka", 3600.0, 1e9, 1e9, first=START, last=END)]
    full = [{"component": "rapl:package-0", "uj": 2 * UJ_PER_KWH, "counted_s": 720 * 3600.0}]
    fp = compute(start=START, end=END, components=rows, rapl=full, factors=F)
    assert fp.energy.source == "rapl"
    assert fp.kwh == pytest.approx(2 * 0.5)
    assert "RAPL" in fp.method["kwh"]
    partial = [{**full[0], "counted_s": 300 * 3600.0}]
    fp = compute(start=START, end=END, components=rows, rapl=partial, factors=F)
    assert fp.energy.source == "model" and fp.energy.kwh_rapl is None


def test_nothing_sampled_is_zero_not_an_error() -> None:
    fp = compute(start=START, end=END, components=[], rapl=[], factors=F)
    assert (fp.coverage, fp.kwh, fp.kg_co2e_total, fp.components) == (0.0, 0.0, 0.0, [])


def test_rapl_wraps() -> None:
    assert rapl_delta(10, 30, wrap=100) == 20
    assert rapl_delta(90, 5, wrap=100) == 15


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        (END, START, "end after"),
        (START, START, "end after"),
        (START, START + MAX_PERIOD + timedelta(seconds=1), "at most"),
        (START.replace(tzinfo=None), END, "time zone"),
    ],
)
def test_bad_periods_are_refused(start: datetime, end: datetime, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_period(start, end)
