"""Webhooks per the Standard Webhooks specification: filters, signatures, retries.

Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from shared.schemas import Severity, json_default

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix the spec gives secrets, not a secret
# 24 random bytes: the spec asks for 24 to 64.
SECRET_BYTES = 24
EVENT_TYPES = ("opened", "updated", "acknowledged", "resolved")

# The Standard Webhooks schedule: an attempt at once, then retries after these delays (about
# 27 hours in all), so a receiver down for a night still gets everything.
DEFAULT_RETRY_SCHEDULE_S: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
# +-20 %: receivers that came back after an outage are not hit by every retry at the same instant.
JITTER = 0.2
# A Retry-After longer than this is not honoured as such (a day is the longest scheduled gap).
MAX_RETRY_AFTER_S = 86400


@dataclass(frozen=True, slots=True)
class Filters:
    """What a subscription wants; None means any."""

    domains: tuple[str, ...] | None = None
    kinds: tuple[str, ...] | None = None
    min_severity: Severity = Severity.INFO
    event_types: tuple[str, ...] = EVENT_TYPES

    def matches(self, *, event_type: str, domain: str, kind: str, severity: Severity) -> bool:
        """
        >>> f = Filters(domains=("waste",), min_severity=Severity.WARNING)
        >>> f.matches(event_type="opened", domain="waste", kind="k", severity=Severity.CRITICAL)
        True
        >>> f.matches(event_type="opened", domain="waste", kind="k", severity=Severity.INFO)
        False
        >>> f.matches(event_type="opened", domain="energy", kind="k", severity=Severity.CRITICAL)
        False
        """
        return (
            event_type in self.event_types
            and (self.domains is None or domain in self.domains)
            and (self.kinds is None or kind in self.kinds)
            and severity.rank >= self.min_severity.rank
        )


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, *, msg_id: str, timestamp: int, body: str) -> str:
    """`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: Sequence[str], *, msg_id: str, timestamp: int, body: str) -> str:
    """Space-separated signatures, one per valid secret (two while a rotation overlaps)."""
    return " ".join(sign(s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets_)


def headers(secrets_: Sequence[str], *, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets_, msg_id=msg_id, timestamp=timestamp, body=body
        ),
        "content-type": "application/json",
        "user-agent": "TownPulse-Webhooks/1",
    }


def body(*, event_type: str, at: datetime, alert: dict[str, Any]) -> str:
    """The JSON body, serialised once when the event is stored, so every retry sends the same bytes.

    >>> from datetime import UTC
    >>> body(event_type="opened", at=datetime(2026, 1, 1, tzinfo=UTC), alert={"id": "a"})
    '{"type":"alert.opened","timestamp":"2026-01-01T00:00:00+00:00","data":{"id":"a"}}'
    """
    doc = {"type": f"alert.{event_type}", "timestamp": at, "data": alert}
    return json.dumps(doc, default=json_default, separators=(",", ":"))


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"  # no retry left
    DISABLED = "disabled"  # 410 Gone: the receiver asked us to stop


def classify(status_code: int | None) -> Outcome:
    """2xx is delivered, 410 disables the subscription, anything else is retried.

    >>> [classify(c).value for c in (200, 204, 410, 429, 503, 404, None)]
    ['delivered', 'delivered', 'disabled', 'retry', 'retry', 'retry', 'retry']
    """
    if status_code is not None and 200 <= status_code < 300:
        return Outcome.DELIVERED
    if status_code == 410:
        return Outcome.DISABLED
    return Outcome.RETRY


def next_delay(
    schedule: Sequence[float],
    *,
    failed_attempts: int,
    rand: float,
    retry_after_s: float | None = None,
) -> float | None:
    """Seconds until the next attempt after `failed_attempts` failures; None: give up.

    `rand` in [0, 1) spreads the delay by +-JITTER. A receiver's Retry-After (429, 503) can only
    lengthen the wait, never shorten it.

    >>> next_delay((5, 300), failed_attempts=1, rand=0.5)
    5.0
    >>> next_delay((5, 300), failed_attempts=2, rand=0.0)
    240.0
    >>> next_delay((5, 300), failed_attempts=3, rand=0.5) is None
    True
    >>> next_delay((5, 300), failed_attempts=1, rand=0.5, retry_after_s=60)
    60.0
    """
    if failed_attempts > len(schedule):
        return None
    delay = schedule[failed_attempts - 1] * (1 + JITTER * (2 * rand - 1))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return float(delay)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Retry-After as seconds or an HTTP date; None if absent or unreadable.

    >>> from datetime import UTC
    >>> parse_retry_after("120", now=datetime(2026, 1, 1, tzinfo=UTC))
    120.0
    >>> parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now=datetime(2026, 1, 1, tzinfo=UTC))
    60.0
    >>> parse_retry_after("soon", now=datetime(2026, 1, 1, tzinfo=UTC)) is None
    True
    >>> parse_retry_after("²", now=datetime(2026, 1, 1, tzinfo=UTC)) is None
    True
    """
    if not value:
        return None
    value = value.strip()
    # str.isdigit() also accepts superscripts and other scripts' digits, which float() refuses.
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None
