"""What every ingest format checks the same way: size, JSON, numbers, names, times, event fields.

Pure functions that raise `Rejection` with the reason the gateway counts and dead-letters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from services.gateway.ingest.rejection import Limits, Reason, Rejection

METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# A DevEUI as network servers write it: ChirpStack lower-case, The Things Stack upper-case.
EUI_RE = re.compile(r"[0-9A-Fa-f]{16}")
# How a device without a DevEUI is named (Tasmota topic, Shelly id, a network server's device
# id): the same pattern as devices.external_id (migration 0008).
EXTERNAL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
# Ids a network server gives (deduplication id, application id): visible ASCII only, so they can
# be stored, logged and compared as they are.
SERVER_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")
# A codec's decoded object is a few levels deep; anything deeper is refused before a mapper or a
# serialiser downstream walks it recursively.
MAX_DEPTH = 32


def check_size(payload: bytes, limits: Limits) -> None:
    """Refuse a message over the size limit, before anything else reads it."""
    if len(payload) > limits.max_bytes:
        raise Rejection(
            Reason.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes > limit {limits.max_bytes}"
        )


def _reject_constant(name: str) -> Any:
    raise Rejection(Reason.NON_FINITE_NUMBER, f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf
        raise Rejection(Reason.NON_FINITE_NUMBER, f"{text[:40]} is out of range")
    return value


def decode_json(payload: bytes, *, finite: bool = False) -> Any:
    """Decode UTF-8 JSON, refusing NaN and Infinity, and with `finite` also 1e400 and the like.

    >>> decode_json(b'{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection(Reason.NOT_UTF8, str(exc)) from None
    try:
        # Python's json accepts NaN and Infinity, which JSON does not: refuse them explicitly.
        if finite:
            return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise Rejection(Reason.INVALID_JSON, str(exc)) from None
    except ValueError:
        # An integer literal beyond sys.get_int_max_str_digits() (4300 digits by default).
        raise Rejection(Reason.NON_FINITE_NUMBER, "number out of range") from None
    except RecursionError:
        raise Rejection(Reason.INVALID_JSON, "nested too deeply") from None


def decode_object(payload: bytes, *, limits: Limits, what: str) -> dict[str, Any]:
    """A size-checked JSON object whose every number is finite (a network server's event)."""
    check_size(payload, limits)
    doc = decode_json(payload, finite=True)
    if not isinstance(doc, dict):
        raise Rejection(Reason.BAD_EVENT, f"expected {what} (a JSON object)")
    return doc


def number(value: Any, *, reason: Reason, what: str) -> float:
    """A JSON number as a finite float; may raise OverflowError for an int beyond float range."""
    # bool is an int subclass in Python; `true` is not a measurement.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejection(reason, f"{what} must be a number, got {type(value).__name__}")
    f = float(value)
    if not math.isfinite(f):
        raise Rejection(Reason.NON_FINITE_NUMBER, f"{what} is not finite")
    return f


def metric_name(name: Any) -> str:
    if not isinstance(name, str) or not METRIC_RE.fullmatch(name):
        shown = name[:64] if isinstance(name, str) else type(name).__name__
        raise Rejection(Reason.INVALID_METRIC_NAME, f"{shown!r} (expected [a-z][a-z0-9_]*)")
    return name


def parse_iso(value: str) -> datetime:
    """An RFC 3339 time with its UTC offset, in UTC (fractions beyond microseconds are cut).

    >>> parse_iso("2025-06-01T13:30:00.123456789+02:00")
    datetime.datetime(2025, 6, 1, 11, 30, 0, 123456, tzinfo=datetime.timezone.utc)
    """
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise Rejection(Reason.INVALID_TIMESTAMP, f"not RFC 3339: {value[:40]!r}") from None
    if ts.tzinfo is None:
        raise Rejection(Reason.INVALID_TIMESTAMP, "timestamp has no UTC offset")
    return to_utc(ts, value)


def to_utc(ts: datetime, shown: str) -> datetime:
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise Rejection(Reason.INVALID_TIMESTAMP, f"out of range: {shown[:40]!r}") from None


def parse_ts(value: Any, *, received_at: datetime) -> datetime:
    """TownPulse's `ts`: absent means the arrival time, else RFC 3339 or Unix seconds."""
    if value is None:
        return received_at
    if isinstance(value, str):
        return parse_iso(value)
    seconds = number(value, reason=Reason.INVALID_TIMESTAMP, what="ts")
    return from_unix(seconds)


def from_unix(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise Rejection(Reason.INVALID_TIMESTAMP, f"out of range: {seconds}") from None


def check_window(ts: datetime, *, received_at: datetime, limits: Limits) -> None:
    if ts < received_at - limits.max_age:
        raise Rejection(
            Reason.TIMESTAMP_TOO_OLD, f"{ts.isoformat()} is older than {limits.max_age}"
        )
    if ts > received_at + limits.max_future:
        raise Rejection(
            Reason.TIMESTAMP_IN_FUTURE,
            f"{ts.isoformat()} is ahead by more than {limits.max_future}",
        )


# --------------------------------------------------------------------------------------------
# Fields of a network server's event or a device's own JSON: each wrong type is a BAD_EVENT
# naming the field, so the dead letter says what to fix.
# --------------------------------------------------------------------------------------------


def _type_error(path: str, expected: str, value: Any) -> Rejection:
    return Rejection(Reason.BAD_EVENT, f"{path} must be {expected}, got {type(value).__name__}")


def get_object(doc: dict[str, Any], key: str, *, path: str) -> dict[str, Any] | None:
    """`doc[key]` if it is a JSON object; None when absent or null."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _type_error(path, "an object", value)
    return value


def get_list(doc: dict[str, Any], key: str, *, path: str) -> list[Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _type_error(path, "an array", value)
    return value


def get_str(doc: dict[str, Any], key: str, *, path: str) -> str | None:
    """`doc[key]` if it is a non-empty string; None when absent, null or empty."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _type_error(path, "a string", value)
    return value or None


def get_int(doc: dict[str, Any], key: str, *, path: str, top: int) -> int | None:
    """`doc[key]` if it is an integer in 0..top; None when absent or null."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(path, "an integer", value)
    if not 0 <= value <= top:
        raise Rejection(Reason.BAD_EVENT, f"{path} must be in 0..{top}, got {value}")
    return value


def get_number(doc: dict[str, Any], key: str, *, path: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    try:
        return number(value, reason=Reason.BAD_EVENT, what=path)
    except OverflowError:
        raise Rejection(Reason.BAD_EVENT, f"{path} out of range") from None


def get_time(doc: dict[str, Any], key: str, *, path: str) -> datetime | None:
    value = get_str(doc, key, path=path)
    if value is None:
        return None
    try:
        return parse_iso(value)
    except Rejection as exc:
        raise Rejection(exc.reason, f"{path}: {exc.detail}") from None


def server_id(value: str | None, *, path: str) -> str | None:
    if value is not None and not SERVER_ID_RE.fullmatch(value):
        raise Rejection(Reason.BAD_EVENT, f"{path} must be 1-128 visible ASCII characters")
    return value


def dev_eui(value: str | None, *, path: str) -> str:
    """A DevEUI in the form devices.dev_eui stores it: 16 lower-case hex digits."""
    if value is None:
        raise Rejection(Reason.BAD_EVENT, f"{path} is missing")
    if not EUI_RE.fullmatch(value):
        raise Rejection(Reason.BAD_EVENT, f"{path} {value[:40]!r} is not 16 hex digits")
    return value.lower()


def decode_base64(value: str, *, path: str) -> bytes:
    """Bytes of a protobuf-JSON `bytes` field: standard or URL-safe base64, padded or not.

    >>> decode_base64("AXVcA4JECAQAAQ==", path="data").hex()
    '01755c03824408040001'
    >>> decode_base64("AXVcA4JECAQAAQ", path="data").hex()
    '01755c03824408040001'
    """
    url_safe = "-" in value or "_" in value
    if url_safe and ("+" in value or "/" in value):
        raise Rejection(Reason.NOT_BASE64, f"{path} mixes two base64 alphabets")
    altchars = b"-_" if url_safe else None
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise Rejection(Reason.NOT_BASE64, f"{path} is not base64: {value[:40]!r}") from None


def check_tree(value: Any, *, path: str) -> None:
    """Refuse a decoded object that could not be stored or walked safely.

    Strings must encode to UTF-8 and fit in PostgreSQL text (no lone surrogate, no NUL), and the
    nesting stays within MAX_DEPTH. Iterative: json.loads accepts nesting that recursion would not.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, path=path)
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise Rejection(Reason.BAD_EVENT, f"{path} is nested deeper than {MAX_DEPTH}")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key, path=path)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str, *, path: str) -> None:
    if "\x00" in text:
        raise Rejection(Reason.BAD_EVENT, f"{path} holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejection(Reason.BAD_EVENT, f"{path} holds a lone surrogate") from None


def body_digest(payload: bytes) -> str:
    """An id for a message that carries none: the same bytes delivered twice are one message.

    >>> body_digest(b"{}")
    'sha256:44136fa355b3678a1146ad16f7e8649e'
    """
    return "sha256:" + hashlib.sha256(payload).hexdigest()[:32]
