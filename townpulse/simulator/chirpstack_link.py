"""Push uplink events to TownPulse's ChirpStack ingest, as a network server's HTTP integration does.

Each event is POSTed to the integration's ingest path with its secret. TownPulse answers 202 once
Kafka has the readings and 200 for an uplink it already took. An uplink is never dropped for a
passing fault: 503 (Kafka or the gateway unavailable) is retried after its Retry-After, a lost
connection or another 5xx after a growing back-off, 429 (the source throttled) after its
Retry-After, until it is taken or the run stops. A refusal (422: the event or its readings are
wrong; 404: nobody registered the DevEUI) is final: it is
logged and counted, never retried, as ChirpStack does. A refused secret (401) makes the
integration again once, then counts as a refusal.

One device's uplinks are sent one after the other, in order; different devices' concurrently
over a small pool of connections.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from townpulse.simulator.provision import ApiError, IngestAccess

log = logging.getLogger(__name__)

# Enough to overlap the gateway's wait for Kafka's acknowledgement (a few ms per uplink) across
# devices while a backlog of blocks of steps goes (runner.py), and under the API's 32 concurrent
# ingest requests (`max_concurrent_ingest`); a network server's HTTP integration uses a similar
# handful of connections.
DEFAULT_WORKERS = 16
# Above the gateway's own wait for Kafka (10 s by default): its 503 arrives before this.
TIMEOUT_S = 30.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
# A Retry-After larger than this is a misconfigured server; wait at most this long between tries.
RETRY_AFTER_MAX_S = 60.0
# The first refusals are logged each; after that only the counts in the progress lines.
REFUSALS_LOGGED = 20


@dataclass(slots=True)
class PushStats:
    """What became of the uplinks pushed so far."""

    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    retries: int = 0


class ChirpStackLink:
    """The simulated network server's HTTP integration, pointed at TownPulse's ingest."""

    def __init__(
        self,
        *,
        api_url: str,
        access: IngestAccess,
        renew: Callable[[], IngestAccess],
        stop: threading.Event,
        workers: int = DEFAULT_WORKERS,
        transport: httpx.BaseTransport | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self._access = access
        self._renew = renew
        self._stop = stop
        # Returns True when the run is stopping (threading.Event.wait's answer).
        self._wait = wait or stop.wait
        self._lock = threading.Lock()
        self.stats = PushStats()
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"),
            timeout=TIMEOUT_S,
            limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
            transport=transport,
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chirpstack")

    def push(self, events: Sequence[tuple[str, bytes]]) -> None:
        """Send `(device id, event body)` pairs; return once each is taken or refused (or the
        run stops). Events of one device go in the order given."""
        by_device: dict[str, list[bytes]] = {}
        for device_id, body in events:
            by_device.setdefault(device_id, []).append(body)
        futures = [
            self._pool.submit(self._send_all, device_id, bodies)
            for device_id, bodies in by_device.items()
        ]
        for future in futures:
            future.result()

    def close(self) -> None:
        """Wait for the uplinks in flight, then close the connections."""
        self._pool.shutdown(wait=True)
        self._http.close()

    def _send_all(self, device_id: str, bodies: list[bytes]) -> None:
        for body in bodies:
            if not self._send(device_id, body):
                return

    def _send(self, device_id: str, body: bytes) -> bool:
        """One uplink until it is taken or refused; False if the run stopped first."""
        delay = BACKOFF_START_S
        renewed = False
        while not self._stop.is_set():
            access = self._access
            try:
                response = self._http.post(
                    access.path,
                    content=body,
                    headers={
                        "Authorization": f"Bearer {access.secret}",
                        "Content-Type": "application/json",
                    },
                )
            except httpx.TransportError as exc:
                log.warning(
                    "ChirpStack push of %s failed (%s); retrying in %.1f s",
                    device_id,
                    type(exc).__name__,
                    delay,
                )
                if self._pause(delay):
                    return False
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            status = response.status_code
            if status == httpx.codes.ACCEPTED:
                self._count("accepted")
                return True
            if status == httpx.codes.OK:
                self._count("duplicates")
                return True
            if status == httpx.codes.UNAUTHORIZED and not renewed:
                renewed = True
                if self._renewed(access):
                    continue
            # 429: the source is throttled for a while (someone else's failed secrets from the
            # same address): a passing fault too, retried after its Retry-After.
            if status in (httpx.codes.TOO_MANY_REQUESTS, httpx.codes.SERVICE_UNAVAILABLE) or (
                status >= 500
            ):
                pause = _retry_after(response) or delay
                log.warning(
                    "TownPulse answered %d to the uplink of %s; retrying in %.1f s",
                    status,
                    device_id,
                    pause,
                )
                if self._pause(pause):
                    return False
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self._refused(device_id, response)
            return True
        return False

    def _pause(self, seconds: float) -> bool:
        with self._lock:
            self.stats.retries += 1
        return self._wait(seconds)

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self.stats, what, getattr(self.stats, what) + 1)

    def _renewed(self, refused: IngestAccess) -> bool:
        """Make the integration again unless another thread already did; False if it failed."""
        with self._lock:
            if self._access is not refused:
                return True
            log.warning("the integration's secret was refused; making the integration again")
            try:
                self._access = self._renew()
            except (ApiError, httpx.HTTPError) as exc:
                log.error("could not make the integration again: %s", exc)
                return False
            return True

    def _refused(self, device_id: str, response: httpx.Response) -> None:
        with self._lock:
            self.stats.refused += 1
            refused = self.stats.refused
        if refused <= REFUSALS_LOGGED:
            log.warning(
                "TownPulse refused the uplink of %s: HTTP %d %s%s",
                device_id,
                response.status_code,
                _detail(response),
                " (further refusals are only counted)" if refused == REFUSALS_LOGGED else "",
            )


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the gateway sends a number; a date is not expected)."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("detail", ""))[:200] if isinstance(body, dict) else ""
