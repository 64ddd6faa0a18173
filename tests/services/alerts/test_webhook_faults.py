"""Webhook deliveries when receivers misbehave or go away: nothing stalls, nothing leaks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from testing.alerts_support import deliveries, event, produce_events, unique_kind
from testing.webhook_receiver import WebhookReceiver
from tests.support import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def receivers() -> Iterator[Callable[..., WebhookReceiver]]:
    made: list[WebhookReceiver] = []

    def make(**fields: object) -> WebhookReceiver:
        r = WebhookReceiver(**fields).listen()  # type: ignore[arg-type]
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _open(kind: str, device: str) -> None:
    """An episode start: the alerts service opens an alert and notifies subscribers."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return produce_events(
        _open.bootstrap,  # type: ignore[attr-defined]
        [event(device, kind, "start", episode_start=t0, ts=t0)],
    )


@pytest.fixture(autouse=True)
def _bootstrap(stack_env: dict[str, str]) -> None:
    _open.bootstrap = stack_env["KAFKA_BOOTSTRAP"]  # type: ignore[attr-defined]


def test_an_unreadable_retry_after_is_a_failed_attempt_then_retried(
    api: httpx.Client, subscriber: Callable[..., dict], receivers: Callable[..., WebhookReceiver]
) -> None:
    kind = unique_kind("retry-after")
    rcv = receivers(status=503, answer_headers={"Retry-After": "²"})
    sub = subscriber(rcv.url, kinds=[kind], retry_schedule_s=[1] * 5)
    rcv.secret = sub["secret"]
    _open(kind, "ra-1")
    wait_for(lambda: rcv.count(status=503) >= 2, timeout=60, what="two refused attempts")
    rcv.status = 200
    wait_for(lambda: len(rcv.delivered()) == 1, timeout=60, what="the delivery")
    [d] = wait_for(
        lambda: [d for d in deliveries(api, sub["id"]) if d["status"] == "delivered"],
        timeout=30,
        what="the delivery recorded",
    )
    assert [a["status_code"] for a in d["attempt_log"]][:2] == [503, 503]
    # Its in-flight slot came back: the next alert goes through as well.
    _open(kind, "ra-2")
    wait_for(lambda: len(rcv.delivered()) == 2, timeout=60, what="the next delivery")


def test_deleting_a_subscription_with_a_delivery_in_flight_blocks_nothing(
    api: httpx.Client,
    subscriber: Callable[..., dict],
    receivers: Callable[..., WebhookReceiver],
    stack_env: dict[str, str],
) -> None:
    kind = unique_kind("delete")
    slow = receivers(delay_s=3.0)
    fast = receivers()
    doomed = subscriber(slow.url, kinds=[kind])
    slow.secret = doomed["secret"]
    other = subscriber(fast.url, kinds=[kind])
    fast.secret = other["secret"]
    _open(kind, "del-1")

    def leased() -> bool:
        with psycopg.connect(stack_env["DATABASE_URL"]) as conn:
            row = conn.execute(
                "SELECT count(*) FROM webhook_outbox WHERE subscription_id = %s"
                " AND leased_until IS NOT NULL",
                (doomed["id"],),
            ).fetchone()
        return bool(row and row[0])

    wait_for(leased, timeout=60, interval=0.05, what="a delivery in flight")
    assert api.delete(f"/v1/webhooks/{doomed['id']}").status_code == 204
    # The slow receiver answers after the deletion: its result has nothing left to update.
    wait_for(lambda: slow.requests, timeout=30, what="the late answer")
    _open(kind, "del-2")
    wait_for(lambda: len(fast.delivered()) == 2, timeout=60, what="both alerts to the other one")
    recorded = wait_for(
        lambda: (
            [d for d in deliveries(api, other["id"]) if d["status"] == "delivered"]
            if len(deliveries(api, other["id"])) == 2
            else None
        ),
        timeout=30,
        what="the other subscription's deliveries recorded",
    )
    assert len(recorded) == 2


def test_a_receiver_down_for_days_is_disabled_then_replayed_in_bulk(
    api: httpx.Client, subscriber: Callable[..., dict], receivers: Callable[..., WebhookReceiver]
) -> None:
    kind = unique_kind("worn")
    rcv = receivers(status=500)
    # A one-step schedule stands for days of retries: each delivery fails after two attempts.
    sub = subscriber(rcv.url, kinds=[kind], retry_schedule_s=[1])
    rcv.secret = sub["secret"]
    for i in range(5):  # the default limit (TOWNPULSE_WEBHOOK_DISABLE_AFTER_FAILURES)
        _open(kind, f"worn-{i}")

    def disabled() -> dict | None:
        got = api.get(f"/v1/webhooks/{sub['id']}").json()
        return got if not got["enabled"] else None

    got = wait_for(disabled, timeout=120, what="the subscription disabled")
    assert "5 deliveries in a row failed" in got["disabled_reason"]
    assert {d["status"] for d in deliveries(api, sub["id"])} == {"failed"}

    rcv.status = 200
    r = api.post(f"/v1/webhooks/{sub['id']}/redeliver-failed")
    assert r.status_code == 200, r.text
    assert r.json()["requeued"] == 5
    wait_for(lambda: len(rcv.delivered()) == 5, timeout=60, what="every failed delivery replayed")
    assert api.get(f"/v1/webhooks/{sub['id']}").json()["enabled"]
