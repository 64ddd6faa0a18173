"""Unit tests for `shared.auth`: API key generation, hashing, verification and id extraction."""

from __future__ import annotations

import hashlib
import re

import pytest

from shared.auth import (
    KEY_PREFIX,
    NewApiKey,
    hash_key,
    key_id_of,
    key_matches,
    new_api_key,
    new_device_password,
)

pytestmark = pytest.mark.unit

TOKEN_RE = re.compile(r"tp_([0-9a-f]{12})_([A-Za-z0-9_-]{32})")
URLSAFE_RE = re.compile(r"[A-Za-z0-9_-]+")


def test_new_api_key_has_the_documented_shape() -> None:
    key = new_api_key()
    m = TOKEN_RE.fullmatch(key.token)
    assert m, key.token
    assert m.group(1) == key.key_id
    assert KEY_PREFIX == "tp"


def test_new_api_key_round_trip() -> None:
    key = new_api_key()
    assert key_id_of(key.token) == key.key_id
    assert key.key_hash == hash_key(key.token)
    assert key_matches(key.token, key.key_hash)


def test_new_api_key_stores_sha256_of_the_whole_token() -> None:
    key = new_api_key()
    assert key.key_hash == hashlib.sha256(key.token.encode()).digest()
    assert len(key.key_hash) == 32
    assert key.token.encode() not in key.key_hash


def test_new_api_keys_are_distinct() -> None:
    keys = [new_api_key() for _ in range(200)]
    assert len({k.key_id for k in keys}) == 200
    assert len({k.token for k in keys}) == 200
    assert len({k.key_hash for k in keys}) == 200


def test_new_api_key_is_immutable() -> None:
    key = new_api_key()
    with pytest.raises(AttributeError):
        key.token = "tp_x_y"  # type: ignore[misc]


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("_starts_with_underscore_xxxxxxxxx", id="leading-underscore"),
        pytest.param("has__two_underscores_xxxxxxxxxxx", id="inner-underscores"),
        pytest.param("ends_with_underscore_xxxxxxxxxx_", id="trailing-underscore"),
        pytest.param("-dash-first-xxxxxxxxxxxxxxxxxxxxx", id="leading-dash"),
    ],
)
def test_secrets_containing_underscores_still_yield_the_id(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    """token_urlsafe() may emit `_` anywhere in the secret: the id must still be recovered."""
    monkeypatch.setattr("shared.auth.secrets.token_urlsafe", lambda _n: secret)
    key = new_api_key()
    assert key.token == f"tp_{key.key_id}_{secret}"
    assert key_id_of(key.token) == key.key_id
    assert key_matches(key.token, key.key_hash)


def test_hash_key_known_vector() -> None:
    assert hash_key("abc") == bytes.fromhex(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_hash_key_encodes_as_utf8() -> None:
    assert hash_key("tp_é_ü") == hashlib.sha256("tp_é_ü".encode()).digest()


def test_hash_key_is_deterministic() -> None:
    assert hash_key("tp_0a1b2c3d4e5f_secret") == hash_key("tp_0a1b2c3d4e5f_secret")


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: t[:-1], id="last-char-dropped"),
        pytest.param(lambda t: t + "x", id="char-appended"),
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="last-char-changed"),
        pytest.param(lambda t: t.upper(), id="uppercased"),
        pytest.param(lambda t: " " + t, id="leading-space"),
        pytest.param(lambda t: t + "\n", id="trailing-newline"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "tp_" + t.split("_", 2)[1] + "_", id="id-without-secret"),
    ],
)
def test_key_matches_refuses_altered_tokens(mutate) -> None:  # type: ignore[no-untyped-def]
    key = new_api_key()
    altered = mutate(key.token)
    assert altered != key.token
    assert not key_matches(altered, key.key_hash)


def test_key_matches_refuses_another_keys_hash() -> None:
    a, b = new_api_key(), new_api_key()
    assert not key_matches(a.token, b.key_hash)
    assert not key_matches(b.token, a.key_hash)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00" * 32, id="zeros"),
        pytest.param(b"\x00" * 31, id="short"),
        pytest.param(b"\x00" * 64, id="long"),
    ],
)
def test_key_matches_refuses_bogus_stored_hashes(stored: bytes) -> None:
    assert not key_matches(new_api_key().token, stored)


@pytest.mark.parametrize(
    ("token", "key_id"),
    [
        pytest.param("tp_0a1b2c3d4e5f_abc", "0a1b2c3d4e5f", id="docstring-example"),
        pytest.param("tp_0a1b2c3d4e5f_ab_c-d", "0a1b2c3d4e5f", id="underscore-in-secret"),
        pytest.param("tp_0a1b2c3d4e5f__abc", "0a1b2c3d4e5f", id="secret-starts-with-underscore"),
        pytest.param("tp_x_y", "x", id="minimal"),
    ],
)
def test_key_id_of_well_formed(token: str, key_id: str) -> None:
    assert key_id_of(token) == key_id


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("tp", id="prefix-only"),
        pytest.param("tp_", id="prefix-underscore"),
        pytest.param("tp__", id="two-underscores"),
        pytest.param("tp___", id="three-underscores"),
        pytest.param("tp_0a1b2c3d4e5f", id="no-secret-part"),
        pytest.param("tp_0a1b2c3d4e5f_", id="empty-secret"),
        pytest.param("tp__secret", id="empty-id"),
        pytest.param("TP_0a1b2c3d4e5f_secret", id="prefix-uppercase"),
        pytest.param("xx_0a1b2c3d4e5f_secret", id="wrong-prefix"),
        pytest.param("tpx_0a1b2c3d4e5f_secret", id="longer-prefix"),
        pytest.param("_tp_0a1b2c3d4e5f_secret", id="leading-underscore"),
        pytest.param(" tp_0a1b2c3d4e5f_secret", id="leading-space"),
        pytest.param("Bearer tp_0a1b2c3d4e5f_secret", id="bearer-included"),
        pytest.param("Bearer nonsense", id="docstring-nonsense"),
        pytest.param("tp-0a1b2c3d4e5f-secret", id="dashes"),
        pytest.param("0a1b2c3d4e5f_secret", id="no-prefix"),
    ],
)
def test_key_id_of_malformed(token: str) -> None:
    assert key_id_of(token) is None


def test_new_api_key_returns_the_dataclass() -> None:
    assert isinstance(new_api_key(), NewApiKey)


def test_new_device_password_is_long_url_safe_and_random() -> None:
    passwords = [new_device_password() for _ in range(200)]
    for p in passwords:
        assert len(p) == 24  # 18 random bytes, base64url without padding
        assert URLSAFE_RE.fullmatch(p), p
    assert len(set(passwords)) == 200
