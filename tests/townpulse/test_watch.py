"""Early warnings on the real stack: the stack's own watch process (townpulse/watch/) raises
platform alerts through Kafka and the alerts service, webhooks included, and they resolve when
the condition clears.

The watch is restarted with a check every second (TOWNPULSE_WATCH_INTERVAL_S) for this module,
and with a lowered disk threshold or restart limit where a test needs one; it is restarted with
the stack's settings at the end.
Resolution takes the alerts service's episode cooldown (TOWNPULSE_EVENT_COOLDOWN_S, 60 s).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testing.webhook_receiver import WebhookReceiver
from tests.support import wait_for
from townpulse.stack import SERVICES, Stack
from townpulse.stack.runner import WATCH
from townpulse.watch import checks

pytestmark = pytest.mark.e2e

# The alerts service's episode cooldown (60 s) plus a few of its ticks (10 s) and checks.
RESOLVE_WITHIN_S = 120
FAST_RETRIES = [1] * 20


def _restart_watch(stack: Stack, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """The stack's watch, started again with these settings over the stack's own."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    stack.stop(WATCH)
    stack.start_watch()
    for key in env:
        monkeypatch.delenv(key)


@pytest.fixture(scope="module")
def fast_watch(stack: Stack) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as mp:
        _restart_watch(stack, mp, TOWNPULSE_WATCH_INTERVAL_S="1")
        yield stack
        stack.stop(WATCH)
        stack.start_watch()


@pytest.fixture
def receiver(subscriber: Callable[..., dict]) -> Iterator[WebhookReceiver]:
    """A receiver subscribed to the platform's alerts (and to nothing else)."""
    r = WebhookReceiver().listen()
    sub = subscriber(r.url, domains=["platform"], retry_schedule_s=FAST_RETRIES)
    r.secret = sub["secret"]
    yield r
    r.close()


def _current(api: httpx.Client, *, device_id: str, kind: str) -> dict[str, Any] | None:
    r = api.get("/v1/alerts", params={"domain": "platform", "device_id": device_id, "kind": kind})
    assert r.status_code == 200, r.text
    return next((a for a in r.json() if a["state"] != "resolved"), None)


def _resolved(api: httpx.Client, alert_id: str) -> bool:
    r = api.get(f"/v1/alerts/{alert_id}")
    assert r.status_code == 200, r.text
    return bool(r.json()["state"] == "resolved")


def _webhooks(receiver: WebhookReceiver, alert_id: str) -> list[str]:
    return [b["type"] for b in receiver.by_alert().get(alert_id, [])]


def _short_certificate(path: Path, *, days: float) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "short-lived test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_a_certificate_near_its_end_raises_an_alert_and_a_webhook_until_it_is_gone(
    fast_watch: Stack, api: httpx.Client, receiver: WebhookReceiver
) -> None:
    stem = f"test-{uuid.uuid4().hex[:8]}"
    path = fast_watch.run / "tls" / f"{stem}.crt"
    _short_certificate(path, days=5)
    try:
        alert = wait_for(
            lambda: _current(api, device_id=f"cert-{stem}", kind=checks.CERT),
            timeout=60,
            what="the certificate's alert",
        )
        # Within 7 days: critical (TOWNPULSE_CERT_CRITICAL_DAYS).
        assert alert["severity"] == "critical"
        assert alert["domain"] == "platform"
        assert 4 < alert["explanation"]["observed"] <= 5
        wait_for(lambda: "alert.opened" in _webhooks(receiver, alert["id"]), what="the webhook")
    finally:
        path.unlink()
    wait_for(lambda: _resolved(api, alert["id"]), timeout=RESOLVE_WITHIN_S, what="resolution")
    wait_for(lambda: "alert.resolved" in _webhooks(receiver, alert["id"]), what="its webhook")
    # One alert for the condition: the checks every second repeated nothing.
    assert _webhooks(receiver, alert["id"]) == ["alert.opened", "alert.resolved"]


def test_a_stale_backup_raises_an_alert_until_a_fresh_one_is_reported(
    fast_watch: Stack, api: httpx.Client, receiver: WebhookReceiver
) -> None:
    status_file = fast_watch.run / "backup-status.json"
    before = status_file.read_bytes() if status_file.exists() else None

    def report(finished_at: dt.datetime) -> None:
        status = {
            "finished_at": finished_at.isoformat(),
            "ok": True,
            "kind": "full",
            "size_bytes": 1234,
            "duration_s": 1.5,
            "verified": True,
            "repository": str(fast_watch.run / "test-backups"),
        }
        status_file.write_text(json.dumps(status))

    try:
        report(dt.datetime.now(dt.UTC) - dt.timedelta(hours=40))
        alert = wait_for(
            lambda: _current(api, device_id="backup", kind=checks.BACKUP),
            timeout=60,
            what="the stale backup's alert",
        )
        assert alert["severity"] == "warning"
        assert 39 < alert["explanation"]["observed"] < 41
        wait_for(lambda: "alert.opened" in _webhooks(receiver, alert["id"]), what="the webhook")
        report(dt.datetime.now(dt.UTC))
        wait_for(lambda: _resolved(api, alert["id"]), timeout=RESOLVE_WITHIN_S, what="resolution")
    finally:
        if before is None:
            status_file.unlink(missing_ok=True)
        else:
            status_file.write_bytes(before)


def test_a_lowered_disk_threshold_raises_an_alert_per_data_directory(
    fast_watch: Stack,
    api: httpx.Client,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _restart_watch(
        fast_watch, monkeypatch, TOWNPULSE_WATCH_INTERVAL_S="1", TOWNPULSE_DISK_WARN_PCT="0.01"
    )
    try:
        alerts = {
            name: wait_for(
                lambda name=name: _current(api, device_id=f"disk-{name}", kind=checks.DISK),
                timeout=60,
                what=f"{name}'s disk alert",
            )
            for name in ("postgres", "kafka", "mosquitto")
        }
        for alert in alerts.values():
            assert alert["explanation"]["expected"] == 0.01
            assert 0 < alert["explanation"]["observed"] <= 100
        wait_for(
            lambda: all("alert.opened" in _webhooks(receiver, a["id"]) for a in alerts.values()),
            what="their webhooks",
        )
    finally:
        _restart_watch(fast_watch, monkeypatch, TOWNPULSE_WATCH_INTERVAL_S="1")
    for alert in alerts.values():
        wait_for(
            lambda alert=alert: _resolved(api, alert["id"]),
            timeout=RESOLVE_WITHIN_S,
            what="resolution",
        )


def test_a_service_restarting_more_than_allowed_raises_an_alert(
    fast_watch: Stack,
    api: httpx.Client,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No restart allowed within the hour: the keeper's next restart of the service is one too
    # many (the count comes from its keeper, as `townpulse status` shows it).
    _restart_watch(
        fast_watch, monkeypatch, TOWNPULSE_WATCH_INTERVAL_S="1", TOWNPULSE_RESTARTS_PER_HOUR="0"
    )
    spec = next(s for s in SERVICES if s.name == "storage")
    process = fast_watch.services.process("storage")
    try:
        fast_watch.kill("storage")
        fast_watch.wait_healthy(spec)
        alert = wait_for(
            lambda: _current(api, device_id=f"service-{process}", kind=checks.RESTARTS),
            timeout=60,
            what="the restarts alert",
        )
        assert alert["explanation"]["observed"] >= 1
        wait_for(lambda: "alert.opened" in _webhooks(receiver, alert["id"]), what="the webhook")
    finally:
        _restart_watch(fast_watch, monkeypatch, TOWNPULSE_WATCH_INTERVAL_S="1")
    wait_for(lambda: _resolved(api, alert["id"]), timeout=RESOLVE_WITHIN_S, what="resolution")
