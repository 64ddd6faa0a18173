"""SenML (RFC 8428) packs: base fields, relative times, numeric values only.

`native.parse_payload` sends a JSON array here; the records become readings of the device the
topic (or the HTTP path) names.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from services.gateway.ingest.common import from_unix, metric_name, number
from services.gateway.ingest.rejection import Limits, Reason, Rejection
from shared.schemas import Reading

# bn and n hold a device URN and a measurement name: a few dozen characters in practice.
SENML_NAME_MAX_LEN = 256
UNIT_MAX_LEN = 16
# RFC 8428 section 4.5.3: a resolved time below 2**28 is relative to "now".
SENML_RELATIVE_TIME_LIMIT = 2**28
SENML_MAX_VERSION = 10


def _senml_base(record: dict[str, Any], key: str, kind: type, current: Any) -> Any:
    if key not in record:
        return current
    value = record[key]
    if kind is float:
        try:
            return number(value, reason=Reason.BAD_BASE_FIELD, what=key)
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


def parse_senml(pack: list[Any], *, received_at: datetime, limits: Limits) -> list[Reading]:
    """The readings of one SenML pack, or a `Rejection` naming the first bad record.

    The caller checks the resulting readings against the time window and the record limit.
    """
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
        metric = metric_name(_senml_metric(bn + name))
        value_key = "v" if "v" in record else "s"
        try:
            value = number(record[value_key], reason=Reason.NON_NUMERIC_VALUE, what=f"record {i}")
            t = record.get("t", 0.0)
            offset = number(t, reason=Reason.INVALID_TIMESTAMP, what=f"record {i} t")
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
            ts = from_unix(resolved)
        unit = record.get("u", bu)
        # isprintable() also refuses lone surrogates (which cannot be encoded to UTF-8 again) and
        # control characters such as NUL (which PostgreSQL text cannot hold).
        if unit is not None and (
            not isinstance(unit, str) or len(unit) > UNIT_MAX_LEN or not unit.isprintable()
        ):
            raise Rejection(Reason.BAD_BASE_FIELD, f"record {i}: bad unit")
        readings.append(Reading(ts=ts, metric=metric, value=value, unit=unit))
    return readings
