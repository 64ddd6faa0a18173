"""Structured JSON logs on stderr, one object per line."""

from __future__ import annotations

import logging
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


def configure_logging(*, service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(ServiceFilter(service))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every rebalance step at INFO; keep them, but not the per-request chatter.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, root.level))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


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
