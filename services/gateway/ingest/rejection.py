"""Why a message was refused: one machine-readable reason each, counted and dead-lettered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


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
    # Network servers' events and devices' own formats.
    BAD_EVENT = "bad_event"  # not an uplink event of the format it came as (missing/odd fields)
    NOT_BASE64 = "not_base64"
    WRONG_APPLICATION = "wrong_application"  # a DevEUI of another application than configured
    DUPLICATE_UPLINK = "duplicate_uplink"  # counted, never dead-lettered: the first one is kept
    REPLAYED_FRAME = "replayed_frame"  # an older frame counter at an older time than one seen
    # Codecs and profiles.
    NO_PROFILE = "no_profile"  # the device has no profile, or its profile does not exist
    NO_CODEC = "no_codec"  # raw bytes, no decoded object, and the profile names no usable codec
    UNKNOWN_FPORT = "unknown_fport"
    CODEC_ERROR = "codec_error"  # the codec threw, or returned `errors`
    CODEC_TIMEOUT = "codec_timeout"  # over its CPU-time limit
    CODEC_MEMORY = "codec_memory"  # over its memory limit
    CODEC_OUTPUT = "codec_output"  # returned something that is not {data: {...}}, or too large
    FIELD_TYPE = "field_type"  # a mapped field of the wrong type
    OUT_OF_RANGE = "out_of_range"  # a value outside its metric's physical range


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 64 * 1024
    max_records: int = 1000
    max_age: timedelta = timedelta(days=7)
    max_future: timedelta = timedelta(minutes=5)


# Neither frozen nor slotted: Python sets `__traceback__` on an exception as it passes through a
# contextlib context manager, which a frozen dataclass refuses (TypeError instead of the reason).
@dataclass
class Rejection(Exception):
    reason: Reason
    detail: str = ""
    # The registered device it came from, once known (its dead letter names it).
    device_id: str | None = None

    # Compared by value (tests, logs), hashed as an exception is (by identity).
    __hash__ = Exception.__hash__
