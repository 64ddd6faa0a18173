"""Alerts and webhooks against the running stack: real Kafka, PostgreSQL and an HTTP receiver.

Each test uses its own alert kind and a subscription filtered on it, so tests never see each
other's alerts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from shared.schemas import Reading, ReadingBatch, Severity
from shared.topics import Domain
from testing.alerts_support import (
    deliveries,
    event,
    produce_events,
    produce_readings,
    unique_kind,
)
from testing.prometheus import metric_value
from testing.webhook_receiver import WebhookReceiver
from tests.support import wait_for

pytestmark = pytest.mark.integration

# Fast retries for tests; the default is the Standard Webhooks schedule (5 s ... 10 h).
FAST_RETRIES = [1] * 20


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


def _alerts(api: httpx.Client, **params: object) -> list[dict]:
    r = api.get("/v1/alerts", params=params)
    assert r.status_code == 200, r.text
    return list(r.json())


def test_every_delivery_verifies_and_tampering_fails_at_the_receiver(
    api: httpx.Client,
    stack_env: dict[str, str],
    receiver: WebhookReceiver,
    subscriber: Callable[..., dict],
) -> None:
    receiver.listen()
    kind = unique_kind()
    sub = subscriber(receiver.url, kinds=[kind], retry_schedule_s=FAST_RETRIES)
    receiver.secret = sub["secret"]
    # The secret is shown once: never in later answers.
    assert "secret" not in api.get(f"/v1/webhooks/{sub['id']}").json()
    assert all("secret" not in s for s in api.get("/v1/webhooks").json())

    now = datetime.now(UTC)
    produce_events(
        stack_env["KAFKA_BOOTSTRAP"],
        [event("m-1", kind, "start", episode_start=now, ts=now, severity=Severity.CRITICAL)],
    )
    wait_for(lambda: receiver.delivered(), timeout=30, what="the first delivery")
    [first] = receiver.requests
    assert first.verified and first.status == 200
    body = receiver.delivered()[first.msg_id]
    assert body["type"] == "alert.opened"
    assert body["data"]["kind"] == kind and body["data"]["severity"] == "critical"
    assert first.msg_id.startswith("msg_")

    # Replays of that delivery, altered: the receiver's standardwebhooks check refuses them.
    signed = {k: v for k, v in first.headers.items() if k.startswith("webhook-")}
    tampered = first.body.replace('"critical"', '"info"')
    assert httpx.post(receiver.url, content=tampered, headers=signed).status_code == 400
    old = datetime.now(UTC) - timedelta(minutes=10)
    old_headers = {
        **signed,
        "webhook-timestamp": str(int(old.timestamp())),
        "webhook-signature": Webhook(sub["secret"]).sign(first.msg_id, old, first.body),
    }
    assert httpx.post(receiver.url, content=first.body, headers=old_headers).status_code == 400
    errors = [r.error for r in receiver.requests if not r.verified]
    assert errors == ["No matching signature found", "Message timestamp too old"]

    [d] = deliveries(api, sub["id"])
    assert d["status"] == "delivered" and d["msg_id"] == first.msg_id
    assert d["attempt_log"][0]["status_code"] == 200 and d["attempt_log"][0]["latency_ms"] > 0


def test_receiver_down_then_503_then_up_gets_everything_in_order(
    api: httpx.Client,
    stack_env: dict[str, str],
    receiver: WebhookReceiver,
    subscriber: Callable[..., dict],
) -> None:
    kind = unique_kind()
    sub = subscriber(receiver.url, kinds=[kind], retry_schedule_s=FAST_RETRIES)
    receiver.secret = sub["secret"]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    devices = [f"m-{i}" for i in range(20)]
    events = []
    for d in devices:
        # Opened, a repeat within the cool-down (updated), then resolved once it is over.
        for k, phase in enumerate(("start", "end", "start", "end")):
            start = t0 + timedelta(seconds=10 * (k // 2))
            events.append(
                event(d, kind, phase, episode_start=start, ts=t0 + timedelta(seconds=5 * k))
            )
    produce_events(stack_env["KAFKA_BOOTSTRAP"], events)

    def attempts() -> list[dict]:
        return [a for d in deliveries(api, sub["id"]) for a in d["attempt_log"]]

    wait_for(
        lambda: sum(1 for a in attempts() if a["error"]) >= 10,
        timeout=30,
        what="refused connections in the delivery log",
    )
    receiver.status = 503
    receiver.listen()
    wait_for(lambda: receiver.count(status=503) >= 10, timeout=30, what="503 answers")
    receiver.status = 200
    wait_for(
        lambda: len(receiver.delivered()) == 3 * len(devices),
        timeout=90,
        what="every event delivered",
    )
    assert all(r.verified for r in receiver.requests)
    by_alert = receiver.by_alert()
    assert len(by_alert) == len(devices)
    for bodies in by_alert.values():
        assert [b["type"] for b in bodies] == ["alert.opened", "alert.updated", "alert.resolved"]
        assert [b["data"]["version"] for b in bodies] == [1, 2, 3]
    # The receiver answers before the dispatcher records the outcome: wait for the records.
    log = wait_for(
        lambda: (
            (ds := deliveries(api, sub["id"]))
            and all(d["status"] == "delivered" for d in ds)
            and ds
        ),
        timeout=30,
        what="every delivery recorded as delivered",
    )
    outcomes = [a for d in log for a in d["attempt_log"]]
    assert any(a["error"] and "ConnectError" in a["error"] for a in outcomes)
    assert any(a["status_code"] == 503 for a in outcomes)
    retried = [d for d in log if d["attempts"] > 1]
    assert retried and all(d["attempt_log"][-1]["status_code"] == 200 for d in retried)


def test_flapping_episodes_give_one_alert_with_a_count(
    api: httpx.Client,
    stack_env: dict[str, str],
    receiver: WebhookReceiver,
    subscriber: Callable[..., dict],
) -> None:
    receiver.listen()
    kind = unique_kind()
    sub = subscriber(receiver.url, kinds=[kind], event_types=["opened", "acknowledged", "resolved"])
    receiver.secret = sub["secret"]
    device = f"m-{uuid.uuid4().hex[:8]}"
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    events = []
    for i in range(30):
        start = t0 + timedelta(seconds=2 * i)
        events.append(event(device, kind, "start", episode_start=start, ts=start))
        events.append(
            event(device, kind, "end", episode_start=start, ts=start + timedelta(seconds=1))
        )
    # Re-emitted events (same ids) change nothing.
    produce_events(stack_env["KAFKA_BOOTSTRAP"], events + events[:10])

    def the_alert() -> dict | None:
        found = _alerts(api, kind=kind)
        return found[0] if found and found[0]["count"] == 30 else None

    alert = wait_for(the_alert, timeout=30, what="one alert with count 30")
    assert len(_alerts(api, kind=kind)) == 1
    assert alert["state"] == "open" and not alert["signal_active"]

    r = api.post(f"/v1/alerts/{alert['id']}/ack", json={"note": "looking"})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    r = api.post(f"/v1/alerts/{alert['id']}/resolve")
    assert r.status_code == 200 and r.json()["state"] == "resolved"
    assert api.post(f"/v1/alerts/{alert['id']}/ack").status_code == 409

    detail = api.get(f"/v1/alerts/{alert['id']}").json()
    types = [t["type"] for t in detail["timeline"]]
    assert types.count("opened") == 1 and types.count("updated") == 29
    assert types[-2:] == ["acknowledged", "resolved"]
    assert detail["explanation"]["message"] == "test episode"
    assert detail["damping"] == {"min_duration_s": 0.0, "cooldown_s": 60.0}
    wait_for(lambda: len(receiver.delivered()) == 3, timeout=30, what="3 deliveries")
    assert [b["type"] for b in receiver.by_alert()[alert["id"]]] == [
        "alert.opened",
        "alert.acknowledged",
        "alert.resolved",
    ]
    assert _alerts(api, kind=kind, state="resolved")[0]["id"] == alert["id"]
    assert _alerts(api, kind=kind, state="open") == []
    metrics = httpx.get(f"{stack_env['ALERTS_URL']}/metrics").text
    assert (
        metric_value(
            metrics, "townpulse_alerts_events_in_total", source="alerts", outcome="duplicate"
        )
        >= 10
    )


def test_threshold_rule_with_hysteresis_on_readings(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    device = f"bin-{uuid.uuid4().hex[:8]}"
    r = api.post(
        "/v1/alert-rules",
        json={
            "name": "bin full",
            "domain": "waste",
            "device_id": device,
            "metric": "fill_pct",
            "op": ">=",
            "threshold": 90,
            "hysteresis": 5,
            "severity": "warning",
            "cooldown_s": 0,
        },
    )
    assert r.status_code == 201, r.text
    rule = r.json()
    assert rule["kind"] == "waste.fill_pct_high"
    assert api.get(f"/v1/alert-rules/{rule['id']}").json()["threshold"] == 90
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    def send(minute: int, value: float) -> None:
        produce_readings(
            stack_env["KAFKA_BOOTSTRAP"],
            [
                ReadingBatch(
                    device_id=device,
                    domain=Domain.WASTE,
                    received_at=datetime.now(UTC),
                    readings=[
                        Reading(ts=t0 + timedelta(minutes=minute), metric="fill_pct", value=value)
                    ],
                )
            ],
        )

    send(0, 80)
    send(1, 93)
    alert = wait_for(lambda: _alerts(api, device_id=device), timeout=30, what="the alert")[0]
    assert alert["state"] == "open" and alert["rule_id"] == rule["id"]
    send(2, 97)
    send(3, 88)  # inside the hysteresis band: still open
    wait_for(lambda: _alerts(api, device_id=device)[0]["peak_value"] == 97, timeout=30, what="peak")
    send(4, 84)  # below 90 - 5: resolved (no cool-down on this rule)
    wait_for(
        lambda: _alerts(api, device_id=device)[0]["state"] == "resolved",
        timeout=30,
        what="resolution",
    )
    alert = _alerts(api, device_id=device)[0]
    assert alert["count"] == 1 and alert["explanation"]["observed"] == 97
    assert api.delete(f"/v1/alert-rules/{rule['id']}").status_code == 204
    assert api.get(f"/v1/alert-rules/{rule['id']}").status_code == 404


def test_410_disables_the_subscription_and_bad_urls_are_refused(
    api: httpx.Client,
    stack_env: dict[str, str],
    receiver: WebhookReceiver,
    subscriber: Callable[..., dict],
) -> None:
    receiver.status = 410
    receiver.listen()
    kind = unique_kind()
    sub = subscriber(receiver.url, kinds=[kind], retry_schedule_s=FAST_RETRIES)
    receiver.secret = sub["secret"]
    now = datetime.now(UTC)
    produce_events(
        stack_env["KAFKA_BOOTSTRAP"], [event("m-1", kind, "start", episode_start=now, ts=now)]
    )
    wait_for(
        lambda: not api.get(f"/v1/webhooks/{sub['id']}").json()["enabled"],
        timeout=30,
        what="the subscription to be disabled",
    )
    assert api.get(f"/v1/webhooks/{sub['id']}").json()["disabled_reason"]
    [d] = deliveries(api, sub["id"])
    assert d["status"] == "failed" and d["last_status_code"] == 410

    # Redelivery after the receiver is fixed and the subscription enabled again.
    receiver.status = 200
    assert api.patch(f"/v1/webhooks/{sub['id']}", json={"enabled": True}).json()["enabled"]
    r = api.post(f"/v1/webhooks/{sub['id']}/deliveries/{d['id']}/redeliver")
    assert r.status_code == 200, r.text
    wait_for(lambda: receiver.delivered(), timeout=30, what="the redelivery")
    assert next(iter(receiver.delivered())) == d["msg_id"]  # the same webhook-id

    rotated = api.post(f"/v1/webhooks/{sub['id']}/rotate-secret", json={"overlap_s": 3600})
    assert rotated.status_code == 200 and rotated.json()["secret"] != sub["secret"]
    for url in ("ftp://example.org/x", "file:///etc/passwd", "javascript:alert(1)", "nope"):
        assert api.post("/v1/webhooks", json={"url": url}).status_code == 422, url


def test_test_send_is_signed_and_reports_the_receivers_answer(
    api: httpx.Client, receiver: WebhookReceiver, subscriber: Callable[..., dict]
) -> None:
    sub = subscriber(receiver.url)
    # Bound but not listening: the test-send reports the refusal, it does not raise.
    down = api.post(f"/v1/webhooks/{sub['id']}/test")
    assert down.status_code == 200, down.text
    assert down.json()["delivered"] is False and down.json()["error"]

    receiver.secret = sub["secret"]
    receiver.listen()
    r = api.post(f"/v1/webhooks/{sub['id']}/test")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["delivered"] is True and body["status_code"] == 200
    got = wait_for(lambda: [q for q in receiver.requests if q.msg_id == body["msg_id"]])
    assert got[0].verified
    assert '"type":"webhook.test"' in got[0].body
    # Not a delivery: the log of the subscription stays empty.
    assert api.get(f"/v1/webhooks/{sub['id']}/deliveries").json() == []
    assert api.post("/v1/webhooks/wh_nosuch/test").status_code == 404
