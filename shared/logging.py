"""Structured JSON logs on stderr, one object per line; device ids only as keyed pseudonyms.

Erasure removes a device from the database, but not from lines already written: so no line ever
holds a plain device id. A line about a device names it in the `device_id` field (`extra`), which
`Pseudonyms` replaces, together with every other occurrence of the id in the line, by an HMAC
of it under a key the logs do not hold. With the key (TOWNPULSE_LOG_PSEUDONYM_KEY, shared by the
services so that one device has one pseudonym in every log) an operator can find a given device's
lines (`pseudonym(id, key)` below); without it, nothing links a line to a device.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import sys
import time
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

# The service a line comes from, when several share a process (shared.http.serve_together):
# each server runs in a context of its own, which its tasks and requests inherit.
SERVICE: ContextVar[str | None] = ContextVar("townpulse_service", default=None)


class ServiceFilter(logging.Filter):
    """Names the service on every record: the context's, else the process's."""

    def __init__(self, default: str) -> None:
        super().__init__()
        self._default = default

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = SERVICE.get() or self._default
        return True


def pseudonym(device_id: str, key: bytes) -> str:
    """The name a device has in the logs.

    >>> pseudonym("meter-12", b"k" * 32)
    'dev~de64c2adec0daeb1'
    """
    return "dev~" + hmac.new(key, device_id.encode(), hashlib.sha256).hexdigest()[:16]


class Pseudonyms(logging.Filter):
    """Replaces a record's `device_id` by its pseudonym, wherever the id shows in the line.

    >>> f = Pseudonyms(b"k" * 32)
    >>> rec = logging.LogRecord("gw", logging.INFO, "", 0, "rejected %s", ("meter-12",), None)
    >>> rec.device_id, rec.detail = "meter-12", "unknown device meter-12"
    >>> f.filter(rec), rec.getMessage(), rec.device_id
    (True, 'rejected dev~de64c2adec0daeb1', 'dev~de64c2adec0daeb1')
    >>> rec.detail
    'unknown device dev~de64c2adec0daeb1'
    """

    def __init__(self, key: bytes | None = None) -> None:
        super().__init__()
        # No key configured: one of the process's own, so lines are never linkable to a device,
        # not even by an operator (nor across the services' logs).
        self._key = key or secrets.token_bytes(32)

    def filter(self, record: logging.LogRecord) -> bool:
        device_id = getattr(record, "device_id", None)
        if not isinstance(device_id, str) or not device_id:
            return True
        alias = pseudonym(device_id, self._key)
        record.msg = record.getMessage().replace(device_id, alias)
        record.args = None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str) and device_id in value:
                setattr(record, name, value.replace(device_id, alias))
        return True


# A LogRecord's own attributes (everything else came through `extra`).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


def configure_logging(
    *, service: str, level: str = "INFO", pseudonym_key: bytes | None = None
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(ServiceFilter(service))
    handler.addFilter(Pseudonyms(pseudonym_key))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every rebalance step at INFO; keep them, but not the per-request chatter.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, root.level))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx logs every request's URL at INFO: the API's proxy would write each device id asked
    # about (/v1/energy/meters/<id>/...) in clear.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


class RepeatFilter(logging.Filter):
    """Lets one copy of a library's message through per logger and `window_s`.

    While Kafka is down aiokafka logs each failed connection attempt, a few thousand lines a
    second: a day's outage would fill the town's disk. The first line says it all. Our own
    loggers are left alone (each 401 line, say, names its own source).

    >>> f = RepeatFilter(window_s=60)
    >>> rec = logging.LogRecord("aiokafka", logging.ERROR, "", 0, "Unable to connect", None, None)
    >>> f.filter(rec), f.filter(rec)
    (True, False)
    >>> ours = logging.LogRecord("shared.http", logging.INFO, "", 0, "401 from %s", ("a",), None)
    >>> f.filter(ours), f.filter(ours)
    (True, True)
    """

    def __init__(
        self,
        *,
        window_s: float = 10.0,
        remembered: int = 1000,
        loggers: tuple[str, ...] = ("aiokafka", "kafka"),
    ) -> None:
        super().__init__()
        self._window_s = window_s
        self._remembered = remembered
        self._loggers = loggers
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._loggers):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._window_s:
            return False
        if len(self._last) >= self._remembered:
            self._last.clear()
        self._last[key] = now
        return True
