"""Pure helpers of the end-to-end benchmark (bench/e2e_stats.py): no stack needed."""

from __future__ import annotations

import doctest
import json

import pytest

from bench import e2e_stats
from bench.e2e import summarise_profile
from bench.e2e_stats import (
    METRICS,
    StepSearch,
    bottleneck,
    domain_plan,
    due,
    percentiles,
    sample_per_domain,
    senml_payload,
    single_payload,
    split,
    sustained,
)

pytestmark = pytest.mark.unit


def test_doctests() -> None:
    assert doctest.testmod(e2e_stats).failed == 0


def test_percentiles_interpolate_like_numpy() -> None:
    values = list(range(1, 101))  # 1..100
    p = percentiles(values)
    assert p == {"p50": 50.5, "p95": pytest.approx(95.05), "p99": pytest.approx(99.01)}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}
    assert percentiles(reversed(values), (0, 100)) == {"p0": 1.0, "p100": 100.0}


@pytest.mark.parametrize("rate", [1, 333.3, 1000, 6000])
def test_pacer_keeps_the_aggregate_rate_however_ticks_fall(rate: float) -> None:
    # Irregular ticks (a busy loop wakes late): what is due at the end is still rate * elapsed.
    elapsed, sent = 0.0, 0
    for k in range(2000):
        elapsed += 0.001 + (k % 7) * 0.003
        sent += due(rate, elapsed) - sent
    assert sent == int(rate * elapsed + 1e-9)
    assert due(rate, 0) == 0


def test_step_search_climbs_until_a_failure_then_bisects_once() -> None:
    s = StepSearch([500, 1000, 2000, 3000], refine=1)
    outcomes: dict[float, bool] = {500: True, 1000: True, 2000: True, 3000: False, 2500: False}
    tried = []
    while (rate := s.next()) is not None:
        tried.append(rate)
        s.record(rate, outcomes[rate])
    assert tried == [500, 1000, 2000, 3000, 2500]
    assert s.best == 2000


def test_step_search_when_everything_or_nothing_is_sustained() -> None:
    s = StepSearch([100, 200])
    for r in (100, 200):
        assert s.next() == r
        s.record(r, True)
    assert s.next() is None and s.best == 200
    s = StepSearch([100, 200], refine=3)
    s.record(100, False)
    assert s.next() is None and s.best is None


def test_domain_plan_gives_the_town_mix_in_every_slice() -> None:
    plan = domain_plan(2000)
    assert {d: plan.count(d) for d in METRICS} == {"energy": 400, "waste": 1400, "traffic": 200}
    parts = split(plan, 2)
    assert sorted(parts[0] + parts[1]) == list(range(2000))
    for part in parts:
        sub = [plan[i] for i in part]
        assert (sub.count("energy"), sub.count("waste"), sub.count("traffic")) == (200, 700, 100)


def test_sample_per_domain_covers_every_domain() -> None:
    plan = domain_plan(100)
    sample = sample_per_domain(plan, 10)
    assert {plan[i] for i in sample} == set(METRICS)
    assert len(sample) == 2 + 7 + 1


def test_payloads_are_what_the_gateway_accepts() -> None:
    flat = json.loads(single_payload(domain="waste", device=3, ts=1_700_000_000))
    assert flat["ts"] == 1_700_000_000 and 0 <= flat["fill_pct"] <= 100
    pack = json.loads(
        senml_payload(
            domain="energy", device=1, device_id="b-1", ts0=1_700_000_000, step_s=60, n=50
        )
    )
    assert len(pack) == 50
    assert pack[0]["bt"] == 1_700_000_000 and pack[0]["bn"] == "urn:dev:id:b-1:"
    times = [pack[0]["bt"] + r.get("t", 0) for r in pack]
    assert times == sorted(set(times))  # distinct: nothing deduplicated
    assert all(r["n"] == "energy_kwh" and isinstance(r["v"], float) for r in pack)


def test_sustained_names_every_shortfall() -> None:
    ok, why = sustained(
        target_rate=6000,
        achieved_rate=6000,
        published=100,
        acked=100,
        expected_rows=100,
        stored=90,
        scored=10,
        expected_scored=20,
    )
    assert not ok and why == ["10 not stored", "10 not scored"]


def test_bottleneck_prefers_a_saturated_python_service() -> None:
    assert (
        bottleneck({"gateway": 0.95, "kafka": 0.9}, cores=2, machine_busy_cores=2.0)["bound"]
        == "gateway"
    )
    assert str(bottleneck({}, cores=2, machine_busy_cores=0.5)["bound"]).startswith("unclear")


def test_profile_summary_ranks_own_and_inclusive_time() -> None:
    collapsed = "\n".join(
        [
            "process 1:python;main (a.py:1);route (g.py:10);parse (p.py:5) 30",
            "process 1:python;main (a.py:1);route (g.py:10) 10",
            "process 1:python;main (a.py:1);send (k.py:3) 60",
        ]
    )
    text, top = summarise_profile(collapsed, service="gateway")
    assert top[0] == "60.0% send (k.py:3)"
    assert "100 samples" in text
    assert "100.0%  main (a.py:1)" in text  # inclusive
