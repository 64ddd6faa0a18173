"""Rule matching with hysteresis, subscription filters, signatures (checked by standardwebhooks),
and the retry schedule."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.alerts.domain import webhooks
from services.alerts.domain.rules import Rule, episode_signal, reading_signals
from services.alerts.domain.webhooks import Filters
from shared.schemas import AlertEvent, Severity
from shared.topics import Domain

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FILL_WARN = Rule(
    id="r1",
    domain="waste",
    metric="fill_pct",
    op=">=",
    threshold=90,
    hysteresis=5,
    severity=Severity.WARNING,
    kind="waste.fill_pct_high",
)
FILL_CRIT = Rule(
    id="r2",
    domain="waste",
    metric="fill_pct",
    op=">=",
    threshold=100,
    hysteresis=5,
    severity=Severity.CRITICAL,
    kind="waste.fill_pct_high",
)
ONE_BIN = Rule(
    id="r3",
    domain="waste",
    device_id="bin-9",
    metric="temperature_c",
    op=">=",
    threshold=60,
    severity=Severity.CRITICAL,
    kind="waste.temperature_c_high",
)


def signals(value: float, *, device: str = "bin-1", metric: str = "fill_pct"):
    return reading_signals(
        [FILL_WARN, FILL_CRIT, ONE_BIN],
        domain="waste",
        device_id=device,
        metric=metric,
        value=value,
        at=T0,
    )


def test_rules_sharing_a_kind_give_one_signal_with_the_worst_severity() -> None:
    [s] = signals(101)
    assert s.active and s.severity is Severity.CRITICAL and s.kind == "waste.fill_pct_high"
    [s] = signals(92)
    assert s.active and s.severity is Severity.WARNING
    assert s.explanation["observed"] == 92 and s.rule_id == "r1"


def test_hysteresis_band_gives_no_signal_and_below_it_clears() -> None:
    assert signals(87) == []  # below 90 but within 5 of it: unchanged
    [s] = signals(84.9)
    assert not s.active


def test_rules_match_domain_device_and_metric() -> None:
    assert signals(70, metric="temperature_c") == []  # rule for bin-9 only
    [s] = signals(70, metric="temperature_c", device="bin-9")
    assert s.active and s.kind == "waste.temperature_c_high"
    assert (
        reading_signals(
            [FILL_WARN], domain="energy", device_id="x", metric="fill_pct", value=99, at=T0
        )
        == []
    )


def test_episode_events_become_signals() -> None:
    start = AlertEvent(
        event_id="e1",
        device_id="m-1",
        domain=Domain.ENERGY,
        kind="energy.consumption_high",
        phase="start",
        severity=Severity.CRITICAL,
        episode_start=T0,
        ts=T0,
        explanation={"expected": 3.0, "observed": 9.5, "message": "3x the usual"},
    )
    s = episode_signal(start)
    assert s.active and s.value == 9.5 and s.severity is Severity.CRITICAL
    end = start.model_copy(update={"phase": "end", "ts": T0 + timedelta(hours=1)})
    assert not episode_signal(end).active


@pytest.mark.parametrize(
    ("filters", "event", "expected"),
    [
        (Filters(), ("opened", "waste", "k", Severity.INFO), True),
        (
            Filters(min_severity=Severity.CRITICAL),
            ("opened", "waste", "k", Severity.WARNING),
            False,
        ),
        (
            Filters(event_types=("opened", "resolved")),
            ("updated", "waste", "k", Severity.CRITICAL),
            False,
        ),
        (Filters(kinds=("a", "b")), ("resolved", "waste", "b", Severity.INFO), True),
        (Filters(kinds=("a",)), ("resolved", "waste", "b", Severity.INFO), False),
        (Filters(domains=("energy",)), ("opened", "waste", "a", Severity.CRITICAL), False),
    ],
)
def test_subscription_filters(filters: Filters, event: tuple, expected: bool) -> None:
    t, d, k, s = event
    assert filters.matches(event_type=t, domain=d, kind=k, severity=s) is expected


def test_signature_verifies_with_standardwebhooks_and_tampering_fails() -> None:
    secret = webhooks.new_secret()
    body = webhooks.body(event_type="opened", at=T0, alert={"id": "al_1", "count": 1})
    now = int(time.time())
    headers = webhooks.headers([secret], msg_id="msg_1", timestamp=now, body=body)
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace('"count":1', '"count":2'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(body, headers)
    old = webhooks.headers([secret], msg_id="msg_1", timestamp=now - 600, body=body)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, old)


def test_both_secrets_sign_during_a_rotation_overlap() -> None:
    old, new = webhooks.new_secret(), webhooks.new_secret()
    body = '{"type":"alert.resolved"}'
    headers = webhooks.headers([new, old], msg_id="msg_2", timestamp=int(time.time()), body=body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


def test_secret_format() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_") and secret != webhooks.new_secret()
    Webhook(secret)  # accepted by the reference implementation


def test_default_retry_schedule_is_standard_webhooks_with_jitter() -> None:
    schedule = webhooks.DEFAULT_RETRY_SCHEDULE_S
    assert schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    for n, base in enumerate(schedule, start=1):
        low = webhooks.next_delay(schedule, failed_attempts=n, rand=0.0)
        high = webhooks.next_delay(schedule, failed_attempts=n, rand=0.999999)
        assert low == pytest.approx(base * 0.8) and high == pytest.approx(base * 1.2, rel=1e-5)
    assert webhooks.next_delay(schedule, failed_attempts=len(schedule) + 1, rand=0.5) is None


def test_retry_after_only_lengthens_and_is_capped() -> None:
    assert webhooks.next_delay((5,), failed_attempts=1, rand=0.5, retry_after_s=1) == 5
    assert webhooks.next_delay((5,), failed_attempts=1, rand=0.5, retry_after_s=30) == 30
    assert webhooks.next_delay((5,), failed_attempts=1, rand=0.5, retry_after_s=10**9) == 86400


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (200, "delivered"),
        (299, "delivered"),
        (410, "disabled"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (301, "retry"),
        (None, "retry"),
    ],
)
def test_classify(code: int | None, outcome: str) -> None:
    assert webhooks.classify(code).value == outcome
