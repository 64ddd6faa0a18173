"""The simulated network server's HTTP integration: retries, refusals, order, a renewed secret."""

from __future__ import annotations

import json
import threading
from collections import defaultdict

import httpx
import pytest

from townpulse.simulator.chirpstack_link import BACKOFF_MAX_S, ChirpStackLink
from townpulse.simulator.provision import IngestAccess

pytestmark = pytest.mark.unit

PATH = "/v1/ingest/chirpstack/sim?event=up"
SECRET = "first-secret"


class FakeIngest:
    """The gateway's ChirpStack ingest behind an httpx mock transport, answering from a script
    of statuses per device (then 202)."""

    def __init__(self, script: dict[str, list[int | Exception]] | None = None) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.secret = SECRET
        self.taken: dict[str, list[int]] = defaultdict(list)
        self.tries: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/ingest/chirpstack/sim"
        assert request.url.params["event"] == "up"
        event = json.loads(request.content)
        device, f_cnt = event["dev"], event["fCnt"]
        with self.lock:
            self.tries[device] += 1
            if request.headers["Authorization"] != f"Bearer {self.secret}":
                return httpx.Response(401, json={"detail": "invalid secret"})
            queue = self.script.get(device, [])
            answer = queue.pop(0) if queue else 202
        if isinstance(answer, Exception):
            raise answer
        if answer == 202:
            with self.lock:
                self.taken[device].append(f_cnt)
            return httpx.Response(202, json={"status": "accepted"})
        if answer == 503:
            return httpx.Response(503, headers={"Retry-After": "5"}, json={"detail": "Kafka"})
        if answer == 429:
            return httpx.Response(429, headers={"Retry-After": "7"}, json={"detail": "throttled"})
        return httpx.Response(answer, json={"detail": f"unknown_device: {device}"})


def _link(
    ingest: FakeIngest,
    *,
    waits: list[float],
    renew: IngestAccess | None = None,
    renewal_works: bool = True,
    workers: int = 4,
) -> ChirpStackLink:
    def do_renew() -> IngestAccess:
        assert renew is not None, "renewal not expected"
        if renewal_works:
            ingest.secret = renew.secret
        return renew

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    return ChirpStackLink(
        api_url="http://api.test",
        access=IngestAccess("sim", PATH, SECRET),
        renew=do_renew,
        stop=threading.Event(),
        workers=workers,
        transport=httpx.MockTransport(ingest.handler),
        wait=wait,
    )


def _events(device: str, *counts: int) -> list[tuple[str, bytes]]:
    return [(device, json.dumps({"dev": device, "fCnt": n}).encode()) for n in counts]


def test_kafka_down_is_retried_after_retry_after_and_nothing_is_lost() -> None:
    ingest = FakeIngest({"bin-1": [503, 503], "bin-2": [httpx.ConnectError("refused"), 502]})
    waits: list[float] = []
    link = _link(ingest, waits=waits)
    try:
        link.push([*_events("bin-1", 1, 2), *_events("bin-2", 7)])
    finally:
        link.close()
    assert dict(ingest.taken) == {"bin-1": [1, 2], "bin-2": [7]}
    # Retry-After honoured for the 503s; the lost connection and the 502 back off and grow.
    assert sorted(waits) == [0.5, 1.0, 5.0, 5.0]
    assert (link.stats.accepted, link.stats.refused, link.stats.retries) == (3, 0, 4)


def test_a_throttled_source_is_retried_after_retry_after_not_refused() -> None:
    # Someone else's failed secrets from the same address throttle it for a while: the uplinks
    # wait and go, none is counted as refused.
    ingest = FakeIngest({"bin-1": [429, 429]})
    waits: list[float] = []
    link = _link(ingest, waits=waits)
    try:
        link.push(_events("bin-1", 1, 2))
    finally:
        link.close()
    assert ingest.taken["bin-1"] == [1, 2]
    assert waits == [7.0, 7.0]
    assert (link.stats.accepted, link.stats.refused, link.stats.retries) == (2, 0, 2)


def test_backoff_is_bounded() -> None:
    ingest = FakeIngest({"bin-1": [httpx.ReadTimeout("slow")] * 9})
    waits: list[float] = []
    link = _link(ingest, waits=waits)
    try:
        link.push(_events("bin-1", 1))
    finally:
        link.close()
    assert ingest.taken["bin-1"] == [1]
    assert waits[:3] == [0.5, 1.0, 2.0] and max(waits) == BACKOFF_MAX_S


def test_a_refused_uplink_is_counted_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    ingest = FakeIngest({"bin-1": [404], "bin-2": [422]})
    waits: list[float] = []
    link = _link(ingest, waits=waits)
    try:
        link.push([*_events("bin-1", 1, 2), *_events("bin-2", 1)])
    finally:
        link.close()
    assert dict(ingest.tries) == {"bin-1": 2, "bin-2": 1}
    assert dict(ingest.taken) == {"bin-1": [2]}  # the next uplink still goes
    assert (link.stats.accepted, link.stats.refused, waits) == (1, 2, [])
    assert "HTTP 404 unknown_device: bin-1" in caplog.text
    assert SECRET not in caplog.text


def test_a_duplicate_answer_counts_as_taken() -> None:
    ingest = FakeIngest({"bin-1": [200]})
    link = _link(ingest, waits=[])
    try:
        link.push(_events("bin-1", 1))
    finally:
        link.close()
    assert (link.stats.accepted, link.stats.duplicates, link.stats.refused) == (0, 1, 0)


def test_a_refused_secret_makes_the_integration_again_once() -> None:
    ingest = FakeIngest()
    ingest.secret = "made-again-elsewhere"
    link = _link(ingest, waits=[], renew=IngestAccess("sim", PATH, "made-again-elsewhere"))
    try:
        link.push([*_events("bin-1", 1, 2), *_events("bin-2", 1, 2), *_events("bin-3", 1)])
    finally:
        link.close()
    assert dict(ingest.taken) == {"bin-1": [1, 2], "bin-2": [1, 2], "bin-3": [1]}
    assert link.stats.refused == 0


def test_a_secret_still_refused_after_renewal_is_a_refusal() -> None:
    ingest = FakeIngest()
    ingest.secret = "nobody-has-this"
    link = _link(
        ingest, waits=[], renew=IngestAccess("sim", PATH, "wrong-too"), renewal_works=False
    )
    try:
        link.push(_events("bin-1", 1))
    finally:
        link.close()
    assert (link.stats.accepted, link.stats.refused) == (0, 1)
    assert ingest.tries["bin-1"] == 2  # once with the old secret, once with the new


def test_each_devices_uplinks_arrive_in_order_while_devices_go_concurrently() -> None:
    # Every device's first tries fail, at different times, while others go through.
    script: dict[str, list[int | Exception]] = {
        f"bin-{d}": [503] * (d % 3) + [httpx.ConnectError("x")] * (d % 2) for d in range(12)
    }
    ingest = FakeIngest(script)
    link = _link(ingest, waits=[], workers=4)
    events = [e for n in range(1, 9) for d in range(12) for e in _events(f"bin-{d}", n)]
    try:
        link.push(events)
    finally:
        link.close()
    assert dict(ingest.taken) == {f"bin-{d}": list(range(1, 9)) for d in range(12)}
    assert link.stats.accepted == 96


def test_stopping_ends_the_retries() -> None:
    stop = threading.Event()
    ingest = FakeIngest({"bin-1": [503] * 100})
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) == 3:
            stop.set()
        return stop.is_set()

    link = ChirpStackLink(
        api_url="http://api.test",
        access=IngestAccess("sim", PATH, SECRET),
        renew=lambda: pytest.fail("no renewal expected"),
        stop=stop,
        transport=httpx.MockTransport(ingest.handler),
        wait=wait,
    )
    try:
        link.push(_events("bin-1", 1, 2))
    finally:
        link.close()
    # Three tries of the first uplink, then the run stopped: the second was never sent.
    assert ingest.taken == {} and ingest.tries == {"bin-1": 3}
