"""Webhook signing secrets, encrypted at rest with a key the database never holds.

The alerts service needs each subscription's secret in clear to sign deliveries (HMAC, Standard
Webhooks), so a hash will not do: the secret is stored encrypted (Fernet: AES-128-CBC with an
HMAC-SHA256, from `cryptography`) under a key given to the alerts service only
(`.run/secrets/webhook-secrets-key`, TOWNPULSE_WEBHOOK_SECRETS_KEY). Whoever reads the table
(a dump, another role, an injection elsewhere) gets ciphertext.

Secrets stored in clear before this (or by a service without the key) are encrypted in place
when the service starts with its key (`seal_clear_rows`): migrations run without the key, so
they cannot. Once a key is configured, a clear value is refused rather than used: someone who
could write it to the table could otherwise choose the key our deliveries are signed with.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg import AsyncConnection
from pydantic import SecretStr

log = logging.getLogger(__name__)

PREFIX = "fernet:"


class SecretUnavailable(Exception):
    """A stored secret that cannot be used (no key, wrong key, or clear where it must not be)."""


class WebhookSecrets:
    """Seals secrets before they are stored, opens them to sign.

    >>> box = WebhookSecrets(SecretStr("k" * 32))
    >>> stored = box.seal("whsec_abc")
    >>> stored.startswith(PREFIX), box.open(stored)
    (True, 'whsec_abc')
    >>> WebhookSecrets(None).seal("whsec_abc")
    'whsec_abc'
    """

    def __init__(self, key: SecretStr | None) -> None:
        self._fernet: Fernet | None = None
        if key is not None:
            # The configured key is a random token; HKDF turns it into Fernet's 32-byte key.
            derived = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"townpulse webhook secrets"
            ).derive(key.get_secret_value().encode())
            self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, clear: str) -> str:
        if self._fernet is None:
            return clear  # a deployment without the key keeps them as before (README)
        return PREFIX + self._fernet.encrypt(clear.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            if self._fernet is None:
                return stored
            raise SecretUnavailable("stored in clear although a key is configured")
        if self._fernet is None:
            raise SecretUnavailable("encrypted, and no key is configured")
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise SecretUnavailable("encrypted under another key, or altered") from exc

    async def seal_clear_rows(self, conn: AsyncConnection[Any]) -> int:
        """Encrypt in place the secrets still stored in clear; how many rows changed."""
        if self._fernet is None:
            return 0
        cur = await conn.execute(
            "SELECT id, secret, previous_secret FROM webhook_subscriptions"
            " WHERE left(secret, %s) <> %s"
            " OR (previous_secret IS NOT NULL AND left(previous_secret, %s) <> %s)"
            " FOR UPDATE",
            (len(PREFIX), PREFIX, len(PREFIX), PREFIX),
        )
        rows = await cur.fetchall()
        for row in rows:
            sub_id, secret, previous = (
                (row["id"], row["secret"], row["previous_secret"]) if isinstance(row, dict) else row
            )
            await conn.execute(
                "UPDATE webhook_subscriptions SET secret = %s, previous_secret = %s WHERE id = %s",
                (
                    self._sealed(secret),
                    None if previous is None else self._sealed(previous),
                    sub_id,
                ),
            )
        if rows:
            log.info("webhook secrets encrypted in place", extra={"subscriptions": len(rows)})
        return len(rows)

    def _sealed(self, value: str) -> str:
        return value if value.startswith(PREFIX) else self.seal(value)
