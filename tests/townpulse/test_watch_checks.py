"""The early warnings' rules (townpulse/watch/checks.py): pure logic, no stack."""

from __future__ import annotations

import doctest
import importlib
from datetime import UTC, datetime, timedelta

import pytest

from shared.schemas import Severity
from townpulse.watch import checks
from townpulse.watch.settings import WatchSettings

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
GB = 1_000_000_000


@pytest.mark.parametrize("name", ["townpulse.watch.checks", "townpulse.service.units"])
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_a_condition_opens_once_escalates_once_and_ends_once() -> None:
    s = WatchSettings(disk_warn_pct=80, disk_critical_pct=95)

    def check(used_pct: float) -> list[checks.Condition]:
        c = checks.disk(name="kafka", path="/d", used=int(used_pct * GB), total=100 * GB,
                        rate=None, s=s)  # fmt: skip
        return [c] if c else []

    events, open_ = checks.transitions({}, check(85), now=T0)
    assert [(e.phase, e.severity, e.device_id, e.domain) for e in events] == [
        ("start", Severity.WARNING, "disk-kafka", "platform")
    ]
    # Still above the threshold: nothing to say.
    again, open_ = checks.transitions(open_, check(86), now=T0 + timedelta(minutes=1))
    assert again == []
    # Worse: the same episode, a new start at a higher severity (the alert escalates).
    worse, open_ = checks.transitions(open_, check(97), now=T0 + timedelta(minutes=2))
    assert [(e.phase, e.severity) for e in worse] == [("start", Severity.CRITICAL)]
    assert worse[0].episode_start == T0 and worse[0].event_id != events[0].event_id
    # Better again but still above the warning: no downgrade, no event.
    better, open_ = checks.transitions(open_, check(90), now=T0 + timedelta(minutes=3))
    assert better == []
    end, open_ = checks.transitions(open_, check(50), now=T0 + timedelta(minutes=4))
    assert [(e.phase, e.episode_start) for e in end] == [("end", T0)]
    assert open_ == {}


def test_the_same_check_repeated_after_a_crash_sends_the_same_event_ids() -> None:
    s = WatchSettings()
    c = checks.certificate(name="ca", path="/ca.crt", not_after=T0 + timedelta(days=10),
                           now=T0, s=s)  # fmt: skip
    assert c is not None
    first, _ = checks.transitions({}, [c], now=T0)
    # The state was not saved: the next check starts from the same open set.
    second, _ = checks.transitions({}, [c], now=T0)
    assert [e.event_id for e in first] == [e.event_id for e in second]


def test_a_disk_filling_fast_warns_before_its_threshold_with_the_days_left() -> None:
    s = WatchSettings(disk_warn_pct=85, disk_warn_days=14, disk_critical_days=3)
    rate = 10 * GB / 86_400  # 10 GB a day
    c = checks.disk(name="postgres", path="/d", used=50 * GB, total=100 * GB, rate=rate, s=s)
    assert c is not None and c.severity is Severity.WARNING
    assert c.extra["days_left"] == 5.0
    c = checks.disk(name="postgres", path="/d", used=75 * GB, total=100 * GB, rate=rate, s=s)
    assert c is not None and c.severity is Severity.CRITICAL
    # Not growing: only the threshold counts.
    assert checks.disk(name="postgres", path="/d", used=50 * GB, total=100 * GB, rate=-1.0, s=s) \
        is None  # fmt: skip


def test_no_backup_warns_only_after_the_grace_period() -> None:
    s = WatchSettings(backup_grace_h=26)
    first = T0 - timedelta(hours=10)
    assert checks.backup(last_ok_at=None, last_run=None, first_run_at=first, now=T0, s=s) is None
    c = checks.backup(last_ok_at=None, last_run=None, first_run_at=T0 - timedelta(hours=30),
                      now=T0, s=s)  # fmt: skip
    assert c is not None and "no successful backup" in c.message


def test_a_failed_last_run_is_said_in_the_message() -> None:
    s = WatchSettings()
    run = {"ok": False, "finished_at": T0.isoformat()}
    c = checks.backup(last_ok_at=T0 - timedelta(hours=80), last_run=run, first_run_at=T0,
                      now=T0, s=s)  # fmt: skip
    assert c is not None and c.severity is Severity.CRITICAL and "failed" in c.message


def test_restarts_are_counted_within_the_hour_across_a_keeper_reset() -> None:
    h = timedelta(hours=1)
    samples = [(T0 - 2 * h, 10), (T0 - h - timedelta(minutes=1), 12), (T0 - timedelta(minutes=30),
               15), (T0 - timedelta(minutes=20), 1), (T0, 4)]  # fmt: skip
    # 12 -> 15 (3), a reset to 1 (1), 1 -> 4 (3).
    assert checks.restarts_within(samples, now=T0, window=h) == 7
    s = WatchSettings(restarts_per_hour=5)
    c = checks.restarts(name="gateway", count=7, s=s)
    assert c is not None and c.subject == "service-gateway"
    assert checks.restarts(name="gateway", count=5, s=s) is None
