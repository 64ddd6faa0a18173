"""API keys and device passwords: generation and verification.

An API key is `tp_<id>_<secret>`; only SHA-256 of the whole key is stored. Keys are 192-bit
random, so a fast hash is enough (no dictionary to attack), and the id makes lookup O(1).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "tp"


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key_id: str
    token: str
    key_hash: bytes


def new_api_key() -> NewApiKey:
    key_id = secrets.token_hex(6)
    token = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(24)}"
    return NewApiKey(key_id=key_id, token=token, key_hash=hash_key(token))


def hash_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def key_id_of(token: str) -> str | None:
    """The id part of a well-formed key, else None.

    >>> key_id_of("tp_0a1b2c3d4e5f_abc")
    '0a1b2c3d4e5f'
    >>> key_id_of("Bearer nonsense") is None
    True
    """
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def key_matches(token: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_key(token), stored_hash)


def new_device_password() -> str:
    return secrets.token_urlsafe(18)


class Role(StrEnum):
    """What a key may do. Each role can do everything the roles before it can.

    >>> Role.OPERATOR.allows(Role.VIEWER), Role.VIEWER.allows(Role.OPERATOR)
    (True, False)
    """

    VIEWER = "viewer"  # reads only
    OPERATOR = "operator"  # also acts on alerts
    ADMIN = "admin"  # also keys, devices, rules, webhooks, open data, audit

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank
