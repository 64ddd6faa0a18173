"""The fault matrix's network-server leg: uplinks flowing from a ChirpStack-format broker while
the gateway is killed and while that broker is down 10 s, and HTTP pushes while Kafka is down.

What a network server's QoS can lose, honestly: ChirpStack's MQTT integration publishes with the
QoS it is configured with (`qos` in its `[integration.mqtt]` section, 0 by default). At QoS 0 an
event published while the gateway is disconnected from that broker, or while the broker is down,
is gone: nothing here can recover it. At QoS 1 (what these tests and the README configure) the
broker keeps the gateway's persistent session and every event it acknowledged reaches TownPulse;
a broker killed without saving loses what it had not yet written (Mosquitto's autosave, as for
TownPulse's own broker). These tests publish QoS 1 and check that nothing acknowledged is lost.

Nothing doubled: a gateway killed between Kafka's acknowledgement and its own PUBACK gets the
uplink again from the broker (at-least-once on Kafka, as on TownPulse's own broker). The waste
service's levels are compared with an uninterrupted run of its model over the stored readings:
a reading applied twice changes what the model says afterwards, which no unique key can hide.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest

from services.waste.domain.bin import LevelRow, WasteProcessor
from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from tests.broker_support import Broker
from tests.lorawan_support import chirpstack_topic, chirpstack_uplink, end_offsets, records_for
from tests.runtime_support import oracle, stored
from tests.support import wait_for
from townpulse.stack import SERVICES, Stack

pytestmark = pytest.mark.e2e

PROFILE = "milesight-iot-em310-udl"
DEVICES = 6
DOWN_S = 10.0
READY_WITHIN_S = 60.0


def _ready(env: dict[str, str]) -> bool:
    for spec in SERVICES:
        try:
            if httpx.get(f"{env[spec.name.upper() + '_URL']}/readyz", timeout=2).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    return True


@pytest.fixture
def lorawan_devices(api: httpx.Client) -> Iterator[list[dict[str, Any]]]:
    made = []
    for _ in range(DEVICES):
        eui = uuid.uuid4().hex[:16]
        r = api.post(
            "/v1/devices",
            json={
                "id": f"fm-{eui}",
                "dev_eui": eui,
                "profile": PROFILE,
                "metadata": {"bin_depth_mm": 2000},
            },
        )
        assert r.status_code == 201, r.text
        made.append(r.json()["device"])
    yield made
    for d in made:
        api.delete(f"/v1/devices/{d['id']}", params={"erase": "true"})


def _distance(i: int) -> float:
    """A bin filling slowly, emptied now and then: distance to the waste in mm."""
    return float(1900 - (i * 37) % 1700)


def _levels_match_an_uninterrupted_run(db: str, device_ids: list[str]) -> None:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT device_id, ts, metric, value FROM readings WHERE device_id = ANY(%s)"
            " ORDER BY device_id, ts, metric",
            (device_ids,),
        ).fetchall()
    by_uplink: dict[str, dict[datetime, list[Reading]]] = defaultdict(lambda: defaultdict(list))
    for device_id, ts, metric, value in rows:
        by_uplink[device_id][ts].append(Reading(ts=ts, metric=metric, value=value))
    series = {
        d: [
            ReadingBatch(
                device_id=d, domain=Domain.WASTE, received_at=datetime.now(UTC), readings=rs
            )
            for _, rs in sorted(uplinks.items())
        ]
        for d, uplinks in by_uplink.items()
    }
    want = oracle(
        WasteProcessor(), series, row_type=LevelRow, values=lambda r: (r.raw, r.level, r.flag)
    )
    sql = "SELECT device_id, ts, raw, level, flag FROM waste_levels WHERE device_id = ANY(%s)"
    wait_for(
        lambda: len(stored(db, sql, device_ids)) == len(want), timeout=120, what="every waste level"
    )
    assert stored(db, sql, device_ids) == want, "the waste service applied an uplink twice"


class NetworkServer(threading.Thread):
    """Publishes each device's uplinks in turn at QoS 1, remembering what its broker acked."""

    def __init__(self, broker: Broker, devices: list[dict[str, Any]], app_id: str) -> None:
        super().__init__(daemon=True)
        self.devices, self.app_id = devices, app_id
        self.start_at = datetime.now(UTC) - timedelta(hours=6)
        self.acked: set[tuple[str, int]] = set()
        self._pending: dict[int, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self.sent = 0
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"ns-{uuid.uuid4().hex[:6]}"
        )
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.max_inflight_messages_set(50)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_publish(self, c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
        with self._lock:
            if mid in self._pending:
                self.acked.add(self._pending.pop(mid))

    def run(self) -> None:
        i = 0
        while not self.stop_event.is_set():
            if not self.client.is_connected():
                time.sleep(0.05)
                continue
            for d in self.devices:
                at = self.start_at + timedelta(seconds=10 * i)
                event = chirpstack_uplink(
                    dev_eui=d["dev_eui"],
                    application_id=self.app_id,
                    f_cnt=i,
                    time=at,
                    decoded={"distance": _distance(i)},
                )
                info = self.client.publish(
                    chirpstack_topic(self.app_id, d["dev_eui"]), event, qos=1
                )
                with self._lock:
                    self._pending[info.mid] = (d["id"], i)
                self.sent += 1
            i += 1
            time.sleep(0.05)

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)
        wait_for(
            lambda: not self._pending or not self.client.is_connected(),
            timeout=30,
            what="the last acknowledgements",
        )
        self.client.loop_stop()
        self.client.disconnect()


def test_uplinks_from_a_network_server_survive_a_gateway_kill_and_its_broker_down(
    api: httpx.Client,
    stack: Stack,
    stack_env: dict[str, str],
    broker: Broker,
    lorawan_devices: list[dict[str, Any]],
) -> None:
    app_id = str(uuid.uuid4())
    r = api.post(
        "/v1/integrations",
        json={
            "id": f"fm-{uuid.uuid4().hex[:8]}",
            "kind": "chirpstack",
            "transport": "mqtt",
            "mqtt_host": "127.0.0.1",
            "mqtt_port": broker.port,
            "application": app_id,
        },
    )
    assert r.status_code == 201, r.text
    integration_id = r.json()["id"]
    ids = [d["id"] for d in lorawan_devices]
    db = stack_env["DATABASE_URL"]
    try:
        wait_for(
            lambda: any(
                i["id"] == integration_id and i["status"]["connected"]
                for i in api.get("/v1/integrations").json()
            ),
            timeout=20,
            what="the integration connected",
        )
        ns = NetworkServer(broker, lorawan_devices, app_id)
        ns.start()
        wait_for(lambda: ns.sent > 200, timeout=30, what="uplinks flowing")
        stack.kill("gateway")
        wait_for(
            lambda: _ready(stack_env),
            timeout=READY_WITHIN_S,
            interval=0.5,
            what="every service ready after the gateway's kill",
        )
        wait_for(lambda: ns.sent > 600, timeout=60, what="uplinks flowing again")
        broker.stop()
        time.sleep(DOWN_S)  # the network server's broker is away: the outage itself
        broker.start()
        wait_for(lambda: ns.client.is_connected(), timeout=30, what="the network server back")
        sent_before = ns.sent
        wait_for(lambda: ns.sent > sent_before + 200, timeout=60, what="uplinks after the outage")
        ns.finish()
        acked = set(ns.acked)
        assert len(acked) > 600

        def stored_uplinks() -> set[tuple[str, int]]:
            with psycopg.connect(db) as conn:
                return {
                    (d, int(c))
                    for d, c in conn.execute(
                        "SELECT device_id, f_cnt FROM device_uplinks WHERE device_id = ANY(%s)",
                        (ids,),
                    ).fetchall()
                }

        wait_for(
            lambda: acked <= stored_uplinks(),
            timeout=120,
            what="every uplink the broker acknowledged stored",
        )
        with psycopg.connect(db) as conn:
            per_uplink = conn.execute(
                "SELECT count(*) FROM readings WHERE device_id = ANY(%s) AND metric = 'fill_pct'",
                (ids,),
            ).fetchone()
        assert per_uplink is not None and per_uplink[0] == len(stored_uplinks())
        _levels_match_an_uninterrupted_run(db, ids)
        # The gateway's integration reconnected by itself after both faults.
        assert any(
            i["id"] == integration_id and i["status"]["connected"]
            for i in api.get("/v1/integrations").json()
        )
    finally:
        api.delete(f"/v1/integrations/{integration_id}")


def test_http_push_answers_503_while_kafka_is_down_and_stores_everything_once(
    api: httpx.Client,
    stack: Stack,
    stack_env: dict[str, str],
    lorawan_devices: list[dict[str, Any]],
) -> None:
    r = api.post(
        "/v1/integrations",
        json={"id": f"fm-{uuid.uuid4().hex[:8]}", "kind": "chirpstack", "transport": "http"},
    )
    assert r.status_code == 201, r.text
    it = r.json()
    url = f"{stack_env['API_URL']}{it['ingest_path']}"
    headers = {"Authorization": f"Bearer {it['http_secret']}"}
    start = datetime.now(UTC) - timedelta(hours=3)
    app_id = str(uuid.uuid4())
    answers: dict[int, int] = defaultdict(int)
    retry_after: set[str] = set()
    uplinks = [(d, i) for i in range(40) for d in lorawan_devices]
    down = threading.Event()

    def push_all() -> None:
        with httpx.Client(timeout=30) as client:
            for n, (d, i) in enumerate(uplinks):
                if n == len(uplinks) // 3:
                    down.set()
                body = chirpstack_uplink(
                    dev_eui=d["dev_eui"],
                    application_id=app_id,
                    f_cnt=i,
                    time=start + timedelta(seconds=60 * i),
                    decoded={"distance": _distance(i)},
                )
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        res = client.post(url, content=body, headers=headers)
                    except httpx.HTTPError:
                        time.sleep(1)
                        continue
                    answers[res.status_code] += 1
                    if res.status_code in (200, 202):
                        break
                    assert res.status_code == 503, res.text
                    retry_after.add(res.headers.get("retry-after", ""))
                    time.sleep(min(float(res.headers.get("retry-after", "1")), 2))
                else:
                    raise AssertionError(f"uplink {i} of {d['id']} never accepted")

    offsets = end_offsets(stack_env["KAFKA_BOOTSTRAP"], "readings.waste")
    pusher = threading.Thread(target=push_all, daemon=True)
    try:
        pusher.start()
        assert down.wait(timeout=60)
        stack.stop("kafka")
        time.sleep(DOWN_S)
        stack.start_kafka()
        pusher.join(timeout=300)
        assert not pusher.is_alive()
        assert answers[503] > 0 and retry_after == {"5"}, dict(answers)
        ids = [d["id"] for d in lorawan_devices]
        db = stack_env["DATABASE_URL"]

        def count() -> int:
            with psycopg.connect(db) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM readings WHERE device_id = ANY(%s)"
                    " AND metric = 'fill_pct'",
                    (ids,),
                ).fetchone()
            return int(row[0]) if row else 0

        wait_for(lambda: count() == len(uplinks), timeout=120, what="every uplink stored")
        # Once on Kafka too: a retry after a 503 waited for the first attempt's record.
        for d in lorawan_devices:
            counters = [
                b.uplink.f_cnt
                for v in records_for(
                    stack_env["KAFKA_BOOTSTRAP"], "readings.waste", d["id"], since=offsets
                )
                if (b := ReadingBatch.from_bytes(v)).uplink is not None
            ]
            assert sorted(counters) == list(range(40)), f"{d['id']}: {sorted(counters)}"
        _levels_match_an_uninterrupted_run(db, ids)
    finally:
        if stack.pid("kafka") is None:
            stack.start_kafka()
        wait_for(
            lambda: _ready(stack_env),
            timeout=READY_WITHIN_S,
            interval=0.5,
            what="every service ready",
        )
        api.delete(f"/v1/integrations/{it['id']}")
