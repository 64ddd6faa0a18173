"""Parsing and validation of device payloads: flat JSON objects and SenML (RFC 8428) packs.

Pure functions: bytes in, a `ReadingBatch` or a `Rejection` out. Each rejection carries a
machine-readable reason (one of `Reason`), which the gateway counts and dead-letters.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.schemas import Reading, ReadingBatch
from shared.topics import DEVICE_ID_RE, MQTT_TOPIC_PREFIX, Domain

# bn and n hold a device URN and a measurement name: a few dozen characters in practice.
SENML_NAME_MAX_LEN = 256
METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
UNIT_MAX_LEN = 16
# RFC 8428 section 4.5.3: a resolved time below 2**28 is relative to "now".
SENML_RELATIVE_TIME_LIMIT = 2**28
SENML_MAX_VERSION = 10


class Reason(StrEnum):
    BAD_TOPIC = "bad_topic"
    UNKNOWN_DEVICE = "unknown_device"
    DOMAIN_MISMATCH = "domain_mismatch"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    NON_FINITE_NUMBER = "non_finite_number"
    WRONG_SHAPE = "wrong_shape"
    NO_METRICS = "no_metrics"
    INVALID_METRIC_NAME = "invalid_metric_name"
    NON_NUMERIC_VALUE = "non_numeric_value"
    UNSUPPORTED_VALUE_TYPE = "unsupported_value_type"
    BAD_BASE_FIELD = "bad_base_field"
    TOO_MANY_RECORDS = "too_many_records"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 64 * 1024
    max_records: int = 1000
    max_age: timedelta = timedelta(days=7)
    max_future: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Rejection(Exception):
    reason: Reason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    domain: Domain
    device_id: str


def parse_topic(topic: str) -> DeviceTopic:
    """Split `sensors/{domain}/{device_id}`.

    >>> parse_topic("sensors/waste/bin-17")
    DeviceTopic(domain=<Domain.WASTE: 'waste'>, device_id='bin-17')
    """
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != MQTT_TOPIC_PREFIX:
        raise Rejection(Reason.BAD_TOPIC, f"expected {MQTT_TOPIC_PREFIX}/{{domain}}/{{device_id}}")
    try:
        domain = Domain(parts[1])
    except ValueError:
        raise Rejection(Reason.BAD_TOPIC, f"unknown domain {parts[1]!r}") from None
    # fullmatch: `$` alone would also accept a trailing newline.
    if not DEVICE_ID_RE.fullmatch(parts[2]):
        raise Rejection(Reason.BAD_TOPIC, "invalid device id")
    return DeviceTopic(domain=domain, device_id=parts[2])


def parse_payload(
    topic: DeviceTopic, payload: bytes, *, received_at: datetime, limits: Limits
) -> ReadingBatch:
    """Turn one MQTT payload into a batch of readings, or raise `Rejection`."""
    if len(payload) > limits.max_bytes:
        raise Rejection(
            Reason.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes > limit {limits.max_bytes}"
        )
    doc = _decode_json(payload)
    if isinstance(doc, dict):
        readings = _parse_flat(doc, received_at=received_at)
    elif isinstance(doc, list):
        readings = _parse_senml(doc, received_at=received_at, limits=limits)
    else:
        raise Rejection(Reason.WRONG_SHAPE, "expected a JSON object or a SenML array")
    if not readings:
        raise Rejection(Reason.NO_METRICS, "the message holds no reading")
    if len(readings) > limits.max_records:
        raise Rejection(
            Reason.TOO_MANY_RECORDS, f"{len(readings)} readings > limit {limits.max_records}"
        )
    for r in readings:
        _check_window(r.ts, received_at=received_at, limits=limits)
    return ReadingBatch(
        device_id=topic.device_id, domain=topic.domain, received_at=received_at, readings=readings
    )


def _reject_constant(name: str) -> Any:
    raise Rejection(Reason.NON_FINITE_NUMBER, f"{name} is not a JSON number")


def _decode_json(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection(Reason.NOT_UTF8, str(exc)) from None
    try:
        # Python's json accepts NaN and Infinity, which JSON does not: refuse them explicitly.
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise Rejection(Reason.INVALID_JSON, str(exc)) from None
    except ValueError:
        # An integer literal beyond sys.get_int_max_str_digits() (4300 digits by default).
        raise Rejection(Reason.NON_FINITE_NUMBER, "number out of range") from None
    except RecursionError:
        raise Rejection(Reason.INVALID_JSON, "nested too deeply") from None


def _number(value: Any, *, reason: Reason, what: str) -> float:
    # bool is an int subclass in Python; `true` is not a measurement.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejection(reason, f"{what} must be a number, got {type(value).__name__}")
    f = float(value)  # may raise OverflowError for huge ints
    if not math.isfinite(f):
        raise Rejection(Reason.NON_FINITE_NUMBER, f"{what} is not finite")
    return f


def _parse_ts(value: Any, *, received_at: datetime) -> datetime:
    if value is None:
        return received_at
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise Rejection(Reason.INVALID_TIMESTAMP, f"not RFC 3339: {value[:40]!r}") from None
        if ts.tzinfo is None:
            raise Rejection(Reason.INVALID_TIMESTAMP, "timestamp has no UTC offset")
        try:
            return ts.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is before year 1 in UTC
            raise Rejection(Reason.INVALID_TIMESTAMP, f"out of range: {value[:40]!r}") from None
    seconds = _number(value, reason=Reason.INVALID_TIMESTAMP, what="ts")
    return _from_unix(seconds)


def _from_unix(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise Rejection(Reason.INVALID_TIMESTAMP, f"out of range: {seconds}") from None


def _check_window(ts: datetime, *, received_at: datetime, limits: Limits) -> None:
    if ts < received_at - limits.max_age:
        raise Rejection(
            Reason.TIMESTAMP_TOO_OLD, f"{ts.isoformat()} is older than {limits.max_age}"
        )
    if ts > received_at + limits.max_future:
        raise Rejection(
            Reason.TIMESTAMP_IN_FUTURE,
            f"{ts.isoformat()} is ahead by more than {limits.max_future}",
        )


def _metric_name(name: Any) -> str:
    if not isinstance(name, str) or not METRIC_RE.fullmatch(name):
        shown = name[:64] if isinstance(name, str) else type(name).__name__
        raise Rejection(Reason.INVALID_METRIC_NAME, f"{shown!r} (expected [a-z][a-z0-9_]*)")
    return name


def _parse_flat(doc: dict[str, Any], *, received_at: datetime) -> list[Reading]:
    try:
        ts = _parse_ts(doc.get("ts"), received_at=received_at)
        return [
            Reading(
                ts=ts,
                metric=_metric_name(k),
                value=_number(v, reason=Reason.NON_NUMERIC_VALUE, what=k),
            )
            for k, v in doc.items()
            if k != "ts"
        ]
    except OverflowError:
        raise Rejection(Reason.NON_FINITE_NUMBER, "number out of range") from None


def _senml_base(record: dict[str, Any], key: str, kind: type, current: Any) -> Any:
    if key not in record:
        return current
    value = record[key]
    if kind is float:
        try:
            return _number(value, reason=Reason.BAD_BASE_FIELD, what=key)
        except OverflowError:
            raise Rejection(Reason.BAD_BASE_FIELD, f"{key} out of range") from None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Rejection(Reason.BAD_BASE_FIELD, f"{key} must be a {kind.__name__}")
    return value


def _senml_metric(resolved_name: str) -> str:
    """The metric is the last segment of the resolved SenML name.

    Base names conventionally carry the device (``urn:dev:mac:...:`` or ``bin-17/``); the device
    is already known from the topic, so only the measurement's own name is kept.

    >>> _senml_metric("urn:dev:ow:10e2073a01080063:temperature_c")
    'temperature_c'
    >>> _senml_metric("bin-17/fill_pct")
    'fill_pct'
    """
    return re.split(r"[:/]", resolved_name)[-1]


def _parse_senml(pack: list[Any], *, received_at: datetime, limits: Limits) -> list[Reading]:
    if len(pack) > limits.max_records:
        raise Rejection(
            Reason.TOO_MANY_RECORDS, f"{len(pack)} records > limit {limits.max_records}"
        )
    bn, bt, bu, bv = "", 0.0, None, 0.0
    readings: list[Reading] = []
    for i, record in enumerate(pack):
        if not isinstance(record, dict):
            raise Rejection(Reason.WRONG_SHAPE, f"record {i} is not an object")
        try:
            bver = _senml_base(record, "bver", int, SENML_MAX_VERSION)
            if bver > SENML_MAX_VERSION or bver < 1:
                raise Rejection(Reason.BAD_BASE_FIELD, f"unsupported bver {bver}")
            bn = _senml_base(record, "bn", str, bn)
            if len(bn) > SENML_NAME_MAX_LEN:
                # Each record's name is bn + n: a long bn would be scanned once per record.
                raise Rejection(Reason.BAD_BASE_FIELD, f"bn longer than {SENML_NAME_MAX_LEN}")
            bt = _senml_base(record, "bt", float, bt)
            bu = _senml_base(record, "bu", str, bu)
            bv = _senml_base(record, "bv", float, bv)
        except Rejection as exc:
            raise Rejection(exc.reason, f"record {i}: {exc.detail}") from None
        if any(k in record for k in ("vs", "vb", "vd")):
            raise Rejection(Reason.UNSUPPORTED_VALUE_TYPE, f"record {i}: only numeric v is stored")
        if "v" not in record and "s" not in record:
            if "n" in record:
                raise Rejection(Reason.NON_NUMERIC_VALUE, f"record {i} has no value")
            continue  # a record holding only base fields
        name = record.get("n", "")
        if not isinstance(name, str):
            raise Rejection(Reason.INVALID_METRIC_NAME, f"record {i}: n must be a string")
        if len(name) > SENML_NAME_MAX_LEN:
            raise Rejection(
                Reason.INVALID_METRIC_NAME, f"record {i}: n longer than {SENML_NAME_MAX_LEN}"
            )
        metric = _metric_name(_senml_metric(bn + name))
        value_key = "v" if "v" in record else "s"
        try:
            value = _number(record[value_key], reason=Reason.NON_NUMERIC_VALUE, what=f"record {i}")
            t = record.get("t", 0.0)
            offset = _number(t, reason=Reason.INVALID_TIMESTAMP, what=f"record {i} t")
        except OverflowError:
            raise Rejection(Reason.NON_FINITE_NUMBER, f"record {i}: number out of range") from None
        if value_key == "v":
            value += bv
            if not math.isfinite(value):
                raise Rejection(Reason.NON_FINITE_NUMBER, f"record {i}: v + bv is not finite")
        resolved = bt + offset
        # RFC 8428 4.5.3: *any* resolved time below 2**28, negative ones included, is relative.
        if resolved < SENML_RELATIVE_TIME_LIMIT:
            try:
                ts = received_at + timedelta(seconds=resolved)
            except OverflowError:
                raise Rejection(
                    Reason.INVALID_TIMESTAMP, f"record {i}: out of range: {resolved}"
                ) from None
        else:
            ts = _from_unix(resolved)
        unit = record.get("u", bu)
        # isprintable() also refuses lone surrogates (which cannot be encoded to UTF-8 again) and
        # control characters such as NUL (which PostgreSQL text cannot hold).
        if unit is not None and (
            not isinstance(unit, str) or len(unit) > UNIT_MAX_LEN or not unit.isprintable()
        ):
            raise Rejection(Reason.BAD_BASE_FIELD, f"record {i}: bad unit")
        readings.append(Reading(ts=ts, metric=metric, value=value, unit=unit))
    return readings
