"""A real webhook receiver on 127.0.0.1 that verifies every delivery with `standardwebhooks`.

It can start "down" (the port is bound but not listening, so connections are refused), answer
with a chosen status for a while, and deduplicates by webhook-id as a receiver should.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    msg_id: str
    headers: dict[str, str]
    body: str
    verified: bool
    error: str | None
    status: int
    at: float = field(default_factory=time.time)
    # The sender died mid-request (a SIGKILL test): fewer bytes than announced arrived.
    truncated: bool = False


@dataclass
class WebhookReceiver:
    secret: str | None = None
    # Answer this status (instead of 200) to verified deliveries; 503 and 410 are useful.
    status: int = 200
    delay_s: float = 0.0
    # Extra headers on every answer (e.g. a Retry-After).
    answer_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    unique: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as real receivers do (the default HTTP/1.0 closes every connection).
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.server_bind()  # bound, not listening: connections are refused
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self._thread: threading.Thread | None = None

    def listen(self) -> WebhookReceiver:
        self.server.server_activate()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        announced = int(h.headers.get("content-length", 0))
        raw_bytes = h.rfile.read(announced)
        truncated = len(raw_bytes) < announced
        raw = raw_bytes.decode(errors="replace")
        headers = {k.lower(): v for k, v in h.headers.items()}
        error = None
        try:
            assert self.secret, "no secret yet"
            Webhook(self.secret).verify(raw, headers)
        except (WebhookVerificationError, AssertionError) as exc:
            error = str(exc)
        status = 400 if error else self.status
        if self.delay_s:
            time.sleep(self.delay_s)
        msg_id = headers.get("webhook-id", "")
        with self.lock:
            self.requests.append(
                Received(msg_id, headers, raw, error is None, error, status, truncated=truncated)
            )
            if status == 200:
                self.unique.setdefault(msg_id, json.loads(raw))
        h.send_response(status)
        for name, value in self.answer_headers.items():
            h.send_header(name, value)
        h.send_header("content-length", "0")
        h.end_headers()

    # ---- views for assertions ----------------------------------------------------------------

    def count(self, *, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if status is None or r.status == status)

    def delivered(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.unique)

    def by_alert(self) -> dict[str, list[dict[str, Any]]]:
        """Each alert's unique deliveries, in the order they first arrived."""
        out: dict[str, list[dict[str, Any]]] = {}
        for body in self.delivered().values():
            out.setdefault(body["data"]["id"], []).append(body)
        return out
