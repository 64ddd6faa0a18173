"""Webhook secrets are encrypted at rest with a key outside the database
(services/alerts/adapters/secrets.py), and secrets stored in clear before are encrypted in place
when the alerts service starts."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from services.alerts.adapters.secrets import PREFIX, WebhookSecrets
from townpulse.stack import Stack

pytestmark = pytest.mark.integration


def _box(stack: Stack) -> WebhookSecrets:
    key = (stack.secrets_dir / "webhook-secrets-key").read_text().strip()
    return WebhookSecrets(SecretStr(key))


def _stored(stack: Stack, sub_id: str) -> tuple[str, str | None]:
    with psycopg.connect(stack.database_url()) as conn:
        row = conn.execute(
            "SELECT secret, previous_secret FROM webhook_subscriptions WHERE id = %s", (sub_id,)
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_a_new_and_a_rotated_secret_are_stored_encrypted(
    api: httpx.Client, stack: Stack, subscriber
) -> None:
    sub = subscriber("https://example.org/hook")
    secret, _ = _stored(stack, sub["id"])
    assert secret.startswith(PREFIX) and sub["secret"] not in secret
    assert _box(stack).open(secret) == sub["secret"]

    r = api.post(f"/v1/webhooks/{sub['id']}/rotate-secret")
    assert r.status_code == 200, r.text
    secret, previous = _stored(stack, sub["id"])
    assert _box(stack).open(secret) == r.json()["secret"]
    assert previous is not None and _box(stack).open(previous) == sub["secret"]


def test_secrets_stored_in_clear_are_encrypted_when_the_service_starts(
    api: httpx.Client, stack: Stack
) -> None:
    sub_id = f"wh_{uuid.uuid4().hex[:16]}"
    clear = f"whsec_{uuid.uuid4().hex}"
    with psycopg.connect(stack.database_url()) as conn:
        conn.execute(
            "INSERT INTO webhook_subscriptions (id, url, secret, previous_secret, event_types,"
            " enabled) VALUES (%s, 'https://example.org/old', %s, %s, '{alert.opened}', false)",
            (sub_id, clear, clear + "-old"),
        )
    try:
        stack.restart("alerts")
        secret, previous = _stored(stack, sub_id)
        assert secret.startswith(PREFIX) and clear not in secret
        assert _box(stack).open(secret) == clear
        assert previous is not None and _box(stack).open(previous) == clear + "-old"
    finally:
        api.delete(f"/v1/webhooks/{sub_id}")
