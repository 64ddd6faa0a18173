"""Pure parts of the chaos benchmark (bench/chaos_stats.py, bench/chaos_load.py): no stack."""

from __future__ import annotations

import doctest
import itertools

import pytest

from bench import chaos_load, chaos_stats
from bench.chaos_load import ChaosPhase, battery_message, payload
from bench.chaos_stats import (
    INFRA,
    CounterDelta,
    account,
    attribute,
    plan_faults,
    recovery_s,
)
from bench.e2e_load import DeviceSpec

pytestmark = pytest.mark.unit

SERVICES = ("gateway", "storage", "api", "energy", "waste", "traffic", "alerts")


def _plan(seed: int, **kw: object) -> list[chaos_stats.Fault]:
    args: dict[str, object] = {
        "seed": seed,
        "duration_s": 1800,
        "every_s": 120,
        "jitter_s": 60,
        "warmup_s": 60,
        "services": SERVICES,
    }
    args.update(kw)
    return plan_faults(**args)  # type: ignore[arg-type]


def test_doctests() -> None:
    assert doctest.testmod(chaos_stats).failed == 0
    assert doctest.testmod(chaos_load).failed == 0


def test_same_seed_same_schedule_other_seed_another() -> None:
    assert _plan(27) == _plan(27)
    assert _plan(27) != _plan(28)


def test_schedule_spacing_kinds_and_bounds() -> None:
    faults = _plan(27)
    assert faults[0].at_s == 60
    gaps = [b.at_s - a.at_s for a, b in itertools.pairwise(faults)]
    assert all(120 <= g <= 180.1 for g in gaps), gaps
    # Every 2-3 minutes over 30 minutes, none in the last minute.
    assert 10 <= len(faults) <= 15
    assert faults[-1].at_s <= 1800 - 60
    for f in faults:
        if f.kind == "kill":
            assert f.target in SERVICES and f.hold_s == 0
        elif f.kind == "down":
            assert f.target in INFRA and 10 <= f.hold_s <= 30
        else:
            assert (f.kind, f.target, f.hold_s) == ("disk", "kafka", 60)


def test_every_kind_of_fault_is_drawn_over_seeds() -> None:
    seen = {(f.kind, f.target if f.kind != "kill" else "") for s in range(20) for f in _plan(s)}
    assert seen == {("kill", ""), ("disk", "kafka")} | {("down", n) for n in INFRA}


def test_schedule_restricted_to_some_kinds() -> None:
    assert {f.kind for f in _plan(3, kinds=["postgres", "kafka"])} == {"down"}


def test_recovery_waits_for_readiness_to_hold() -> None:
    # Ready right after the fault, then a service notices and drops: recovery is the later one.
    samples = [(float(t), t not in (12, 13, 14)) for t in range(10, 40)]
    assert recovery_s(samples, end=10, stable_s=5) == 5.0
    assert recovery_s(samples[:8], end=10, stable_s=5) is None  # not held long enough yet
    assert recovery_s([(t, False) for t in range(100)], end=0, stable_s=1) is None


def test_counter_delta_across_restarts() -> None:
    c = CounterDelta()
    for v in (5, 5, 8, 0, 2, 2, 7):
        c.feed(v)
    assert c.total == 3 + 2 + 5


def test_accounting_lost_doubled_and_who_doubled() -> None:
    keys = [("m-1", t) for t in range(10)]
    acked = set(keys[:8])  # the last two never had their PUBACK
    stored = set(keys[:6]) | {keys[9]}  # 6 and 7 acknowledged and lost; 9 stored unacked
    kafka = {k: 1 for k in stored}
    kafka[keys[0]] = 2  # resent by the device after a dropped connection
    kafka[keys[1]] = 3  # sent once, on Kafka three times: the stack doubled it
    r = account(published=keys, acked=acked, stored=stored, kafka_counts=kafka, resent={keys[0]})
    assert r["published"] == 10
    assert r["acknowledged"] == 8
    assert r["stored"] == 7
    assert r["lost_acked"] == 2 and r["lost_keys"] == [keys[6], keys[7]]
    assert r["not_acked_not_stored"] == 1
    assert r["not_acked_but_stored"] == 1
    assert r["acked_not_on_kafka"] == 2
    assert r["doubled"] == 2
    assert r["extra_kafka_records"] == 1 + 2
    assert r["doubled_resent_by_device"] == 1
    assert r["doubled_sent_once"] == 1 and r["doubled_sent_once_keys"] == [keys[1]]


def test_accounting_ignores_other_devices_records() -> None:
    mine, other = ("m-1", 1), ("x-1", 1)
    r = account(
        published=[mine],
        acked={mine},
        stored={mine, other},
        kafka_counts={mine: 1, other: 5},
        resent=set(),
    )
    assert (r["doubled"], r["stored"], r["stored_not_published"]) == (0, 1, 1)


def test_attribution_to_the_fault_before() -> None:
    windows = [("#1 SIGKILL gateway", 60.0), ("#2 kafka down 12 s", 200.0)]
    assert attribute([10.0, 61.0, 199.9, 200.0, 500.0], windows) == {
        "before any fault": 1,
        "#1 SIGKILL gateway": 2,
        "#2 kafka down 12 s": 2,
    }


def test_energy_meters_send_low_then_fine_battery_levels() -> None:
    phase = ChaosPhase(
        rate=1, duration_s=1, ts0=1_700_000_000, step_s=60, alert_every=4, ack_grace_s=1
    )
    meter = DeviceSpec(0, "m-1", "energy", "u", "p", "sensors/energy/m-1")
    bin_ = DeviceSpec(1, "b-1", "waste", "u", "p", "sensors/waste/b-1")
    assert [battery_message(s, 4) for s in range(3, 16, 4)] == [5.0, 80.0, 5.0, 80.0]
    assert payload(meter, 3, phase) == b'{"ts":1700000180,"battery_pct":5.0}'
    assert b"energy_kwh" in payload(meter, 2, phase)
    # Only meters: a bin's 4th message is a fill level like the others.
    assert b"fill_pct" in payload(bin_, 3, phase)
    assert battery_message(3, 0) is None


def test_report_section_flags_a_fault_not_recovered() -> None:
    from bench.report import chaos_section

    faults = [
        {"n": 1, "started_s": 60.0, "label": "SIGKILL gateway", "recovery_s": 7.0,
         "recovered_within_target": True, "not_ready_services": ["gateway"]},
        {"n": 2, "started_s": 200.0, "label": "kafka disk full 60 s", "recovery_s": None,
         "recovered_within_target": False, "not_ready_services": ["storage"],
         "kafka_alive_at_end": False, "restarted_by_harness": "kafka"},
    ]  # fmt: skip
    result = {
        "settings": {"devices": 3, "rate": 10, "duration": 300, "alert_every": 20, "seed": 1},
        "targets": {"lost_acked": 0, "doubled": 0, "recovery_s_max": 60.0},
        "readings": {"published": 10, "lost_acked": 0, "doubled": 1,
                     "doubled_by_fault": {"#1 SIGKILL gateway": 1}},
        "alerts": {"expected": 2, "received": 2},
        "webhooks": {"expected": 4, "received": 4, "received_more_than_once": 0},
        "faults": faults,
    }  # fmt: skip
    text = "\n".join(chaos_section(result))
    assert "not recovered by itself: fault 2" in text
    assert "| 1 | 60.0 | SIGKILL gateway | 7.0 | met | gateway | 0 | 1 |" in text
    assert "| 2 | 200.0 | kafka disk full 60 s |  | **not met** |" in text
    assert "restarted_by_harness: kafka" in text
