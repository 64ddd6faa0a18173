"""SIGKILL the alerts service while it delivers webhooks: after a restart nothing is lost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from testing.alerts_support import deliveries, event, produce_events, unique_kind
from testing.webhook_receiver import WebhookReceiver
from tests.support import wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.e2e

DEVICES = 150  # each gives two deliveries: opened, then resolved


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    # A little slow, so that the kill lands while deliveries are in flight.
    r = WebhookReceiver(delay_s=0.02).listen()
    yield r
    r.close()


def _episodes(kind: str, devices: range) -> list:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    out = []
    for i in devices:
        # Ended long enough ago that the cool-down is over: opened, then resolved.
        out.append(event(f"m-{i}", kind, "start", episode_start=t0, ts=t0))
        out.append(event(f"m-{i}", kind, "end", episode_start=t0, ts=t0 + timedelta(seconds=5)))
    return out


def test_sigkill_during_deliveries_loses_nothing(
    api: httpx.Client,
    stack: Stack,
    stack_env: dict[str, str],
    receiver: WebhookReceiver,
    subscriber: Callable[..., dict],
) -> None:
    kind = unique_kind("crash")
    sub = subscriber(receiver.url, kinds=[kind], retry_schedule_s=[1] * 20)
    receiver.secret = sub["secret"]
    bootstrap = stack_env["KAFKA_BOOTSTRAP"]

    produce_events(bootstrap, _episodes(kind, range(DEVICES)))
    wait_for(lambda: len(receiver.delivered()) >= 40, timeout=60, what="deliveries under way")
    stack.kill("alerts")
    killed_at = len(receiver.delivered())
    # Produced while the service is dead: they wait in Kafka.
    produce_events(bootstrap, _episodes(kind, range(DEVICES, DEVICES + 50)))
    stack.restart_service("alerts")

    expected = 2 * (DEVICES + 50)
    wait_for(
        lambda: len(receiver.delivered()) == expected,
        timeout=180,
        what=f"{expected} unique deliveries (had {killed_at} at the kill)",
    )
    assert killed_at < expected
    # Every complete request verifies; a body cut short by the kill may not (it is retried).
    unverified = [r for r in receiver.requests if not r.verified]
    assert all(r.truncated for r in unverified), [r.error for r in unverified]
    by_alert = receiver.by_alert()
    assert len(by_alert) == DEVICES + 50
    for bodies in by_alert.values():
        assert [b["type"] for b in bodies] == ["alert.opened", "alert.resolved"]
    log = deliveries(api, sub["id"])
    assert len(log) == expected and {d["status"] for d in log} == {"delivered"}
    # At least once: a delivery in flight at the kill may arrive twice, with the same id.
    assert len(receiver.requests) >= expected
