"""The fault matrix: one steady stream through the real stack while each component fails in turn.

20 devices per domain publish over MQTT with QoS 1 (over 10,000 messages), with readings
that open and close alerts, and a webhook receiver subscribed. For each fault in turn
(SIGKILL of every service; a stop of at least 10 s of PostgreSQL and Kafka) a segment
of the stream is published across the fault. Nothing is run to recover: the keepers restart
killed services, and every service reconnects to a component that returns. Afterwards:

- every reading is stored once (counted per device);
- the derived rows (energy scores, waste levels, traffic flows, lighting readings) equal, value
  by value, those of the same processors run here uninterrupted: a reading applied twice to a
  model, or skipped, changes what the model says afterwards, which the unique keys cannot hide;
- every alert the oracle expects exists, every webhook delivery of our devices arrived, and each
  webhook-id was received once (receipts are counted before any deduplication);
- no stored offset ever moved backwards (sampled throughout);
- every service was ready within 60 s of the component's return;
- each kill landed while the component had work in flight (consumer lag or unacknowledged
  messages > 0).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from services.energy.domain.meter import EnergyProcessor, ScoreRow
from services.lighting.domain.circuit import LightingRow
from services.traffic.domain.counter import FlowRow, TrafficProcessor
from services.waste.domain.bin import LevelRow, WasteProcessor
from shared import domains
from shared.schemas import ReadingBatch
from shared.topics import READINGS_TOPICS, Domain
from testing.alerts_support import subscribe
from testing.prometheus import metric_value
from testing.webhook_receiver import WebhookReceiver
from tests.runtime_support import oracle, stored
from tests.services.energy.test_energy_runtime import _series as energy_series
from tests.services.lighting.test_lighting_runtime import _series as lighting_series
from tests.services.lighting.test_lighting_runtime import processor as lighting_processor
from tests.services.traffic.test_traffic_runtime import _series as traffic_series
from tests.services.waste.test_waste_runtime import _series as waste_series
from tests.support import Publisher, RegisteredDevice, wait_for
from townpulse.stack import SERVICES, Stack

pytestmark = pytest.mark.e2e

PER_DOMAIN = 20
# Messages per device and segment; one segment is published across each fault.
PER_SEGMENT = {"energy": 30, "waste": 20, "traffic": 20, "lighting": 20}
# Every service but the API (the test drives the faults through it), each domain's included.
KILLS = tuple(spec.name for spec in SERVICES if spec.name != "api")
OUTAGES = ("postgres", "kafka", "mosquitto")
FAULTS = KILLS + OUTAGES
DOWN_S = 10.0
READY_WITHIN_S = 60.0
# Fast enough that consumers have a backlog to be killed in the middle of.
RATE_PER_S = 600.0


def _payload(batch: ReadingBatch) -> bytes:
    doc: dict[str, Any] = {"ts": batch.readings[0].ts.isoformat()}
    doc.update({r.metric: r.value for r in batch.readings})
    return json.dumps(doc).encode()


class Stream:
    """Publishes segments from every device's own MQTT connection, interleaved, at a rate."""

    def __init__(self, devices: list[RegisteredDevice], series: dict[str, list[ReadingBatch]]):
        self.publishers = {d.id: Publisher(d) for d in devices}
        self.series = series
        self.published = 0
        self.thread: threading.Thread | None = None

    def segment(self, k: int) -> list[tuple[str, bytes, int]]:
        out = []
        rows = max(PER_SEGMENT.values())
        for i in range(rows):
            for device_id, batches in self.series.items():
                n = len(batches) // len(FAULTS)
                if i < n:
                    b = batches[k * n + i]
                    out.append((device_id, _payload(b), len(b.readings)))
        return out

    def start(self, k: int) -> None:
        msgs = self.segment(k)

        def run() -> None:
            t0 = time.monotonic()
            for j, (device_id, payload, _) in enumerate(msgs):
                pause = t0 + j / RATE_PER_S - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                self.publishers[device_id].publish(payload)
                self.published += 1

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(timeout=300)
        self.acknowledged()

    def acknowledged(self) -> None:
        """Every message published so far has its PUBACK."""
        # paho keeps each unacknowledged message and sends it again after a reconnection.
        for p in self.publishers.values():
            wait_for(
                lambda p=p: not p.client._out_messages,  # type: ignore[misc]
                timeout=180,
                what="every PUBACK",
            )

    def close(self) -> None:
        for p in self.publishers.values():
            p.close()


class OffsetWatch:
    """Samples stream_offsets; any offset seen to decrease is a violation."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.seen: dict[tuple[str, str, int], int] = {}
        self.backwards: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                with psycopg.connect(self.db, connect_timeout=2) as conn:
                    rows = conn.execute(
                        "SELECT group_id, topic, partition, next_offset FROM stream_offsets"
                    ).fetchall()
            except psycopg.Error:
                continue  # PostgreSQL is the fault right now
            for g, t, p, o in rows:
                before = self.seen.get((g, t, p))
                if before is not None and o < before:
                    self.backwards.append(f"{g} {t}[{p}]: {before} -> {o}")
                self.seen[(g, t, p)] = o


class LagProbe:
    """Records in Kafka that a consumer group has not committed yet, asked quickly and often
    (one event loop and one pair of clients for the whole test)."""

    def __init__(self, bootstrap: str) -> None:
        self.loop = asyncio.new_event_loop()

        async def start() -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
            await admin.start()
            await consumer.start()
            return admin, consumer

        self.admin, self.consumer = self.loop.run_until_complete(start())

    def lag(self, group: str, topics: list[str]) -> int:
        async def run() -> int:
            committed = await self.admin.list_consumer_group_offsets(group)
            # Every partition of these topics has been committed by the group by now.
            tps = [tp for tp in committed if tp.topic in topics]
            ends = await self.consumer.end_offsets(tps)
            return sum(
                max(0, ends[tp] - (committed[tp].offset if tp in committed else 0)) for tp in tps
            )

        try:
            return self.loop.run_until_complete(asyncio.wait_for(run(), 5))
        except Exception:
            return 0  # Kafka restarting: ask again

    def close(self) -> None:
        self.loop.run_until_complete(self.consumer.stop())
        self.loop.run_until_complete(self.admin.close())
        self.loop.close()


GROUPS = {
    "storage": ("storage", [*READINGS_TOPICS.values()]),
    "energy": ("energy", [READINGS_TOPICS[Domain.ENERGY]]),
    "waste": ("waste", [READINGS_TOPICS[Domain.WASTE]]),
    "traffic": ("traffic", [READINGS_TOPICS[Domain.TRAFFIC]]),
    "lighting": ("lighting", [READINGS_TOPICS[Domain.LIGHTING]]),
    "alerts": ("alerts", [*READINGS_TOPICS.values()]),
}


def _in_flight(env: dict[str, str], probe: LagProbe, name: str) -> Callable[[], int]:
    if name == "gateway":
        url = f"{env['GATEWAY_URL']}/metrics"
        return lambda: int(
            metric_value(httpx.get(url, timeout=2).text, "townpulse_gateway_inflight")
        )
    group, topics = GROUPS[name]
    return lambda: probe.lag(group, topics)


def _all_ready(env: dict[str, str]) -> bool:
    for spec in SERVICES:
        try:
            if httpx.get(f"{env[spec.name.upper() + '_URL']}/readyz", timeout=2).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    return True


def _restart_infra(stack: Stack, name: str) -> None:
    {
        "postgres": stack.start_postgres,
        "kafka": stack.start_kafka,
        "mosquitto": stack.start_mosquitto,
    }[name]()


@pytest.fixture
def devices(api: httpx.Client) -> Iterator[list[RegisteredDevice]]:
    made: list[RegisteredDevice] = []
    tag = uuid.uuid4().hex[:6]
    for domain in domains.names():
        for i in range(PER_DOMAIN):
            device_id = f"fm-{tag}-{domain[0]}{i}"
            r = api.post("/v1/devices", json={"id": device_id, "domain": domain})
            assert r.status_code == 201, r.text
            c = r.json()["mqtt"]
            made.append(
                RegisteredDevice(
                    id=device_id,
                    domain=domain,
                    username=c["username"],
                    password=c["password"],
                    topic=c["topic"],
                    host=c["host"],
                    port=c["port"],
                )
            )
    yield made
    for d in made:
        api.delete(f"/v1/devices/{d.id}")


@pytest.mark.timeout(1800)
def test_nothing_lost_nothing_doubled_whatever_fails(
    api: httpx.Client,
    stack: Stack,
    stack_env: dict[str, str],
    devices: list[RegisteredDevice],
) -> None:
    env, db = stack_env, stack_env["DATABASE_URL"]
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=5)
    series: dict[str, list[ReadingBatch]] = {}
    for k, d in enumerate(devices):
        n = PER_SEGMENT[d.domain] * len(FAULTS)
        if d.domain == "energy":
            series[d.id] = energy_series(d.id, start=start, n=n, phase=k / PER_DOMAIN)
        elif d.domain == "waste":
            series[d.id] = waste_series(d.id, start=start, n=n, speed=1.0 + k % 5)
        elif d.domain == "lighting":
            series[d.id] = lighting_series(d.id, start=start, n=n, phase=k / PER_DOMAIN)
        else:
            series[d.id] = traffic_series(d.id, start=start, n=n, phase=k / PER_DOMAIN)
    total = sum(sum(len(x.readings) for x in b) for b in series.values())
    assert sum(len(b) for b in series.values()) >= 10_000

    receiver = WebhookReceiver(delay_s=0.01).listen()
    sub = subscribe(api, receiver.url, retry_schedule_s=[2] * 20)
    receiver.secret = sub["secret"]
    stream = Stream(devices, series)
    watch = OffsetWatch(db)
    probe = LagProbe(env["KAFKA_BOOTSTRAP"])
    recovery: dict[str, float] = {}
    ids = [d.id for d in devices]

    def count() -> int:
        with psycopg.connect(db) as conn:
            row = conn.execute(
                "SELECT count(*) FROM readings WHERE device_id = ANY(%s)", (ids,)
            ).fetchone()
        return int(row[0]) if row else 0

    try:
        for k, fault in enumerate(FAULTS):
            stream.start(k)
            if fault in KILLS:
                in_flight = _in_flight(env, probe, fault)
                wait_for(
                    lambda f=in_flight: f() > 0,  # type: ignore[misc]
                    timeout=60,
                    interval=0.01,
                    what=f"{fault} to have work in flight",
                )
                stack.kill(fault)
                returned = time.monotonic()
            else:
                under_way = stream.published + 200
                wait_for(
                    lambda u=under_way: stream.published > u,  # type: ignore[misc]
                    timeout=60,
                    what="the segment under way",
                )
                stack.stop(fault)
                time.sleep(DOWN_S)  # the outage itself: at least this long
                _restart_infra(stack, fault)
                returned = time.monotonic()
            wait_for(
                lambda: _all_ready(env),
                timeout=READY_WITHIN_S,
                interval=0.5,
                what=f"every service ready after {fault}",
            )
            recovery[fault] = time.monotonic() - returned
            stream.join()
        wait_for(lambda: count() == total, timeout=300, what=f"{total} readings stored")
        with psycopg.connect(db) as conn:
            per_device = dict(
                conn.execute(
                    "SELECT device_id, count(*) FROM readings WHERE device_id = ANY(%s) GROUP BY 1",
                    (ids,),
                ).fetchall()
            )
        assert per_device == {d: sum(len(x.readings) for x in b) for d, b in series.items()}

        checks = [
            (
                "energy",
                EnergyProcessor(),
                ScoreRow,
                lambda r: (r.observed, r.expected, r.lower, r.upper, r.score, r.is_anomaly, r.kind),
                "SELECT device_id, ts, observed, expected, lower, upper, score, is_anomaly, kind "
                "FROM energy_scores WHERE device_id = ANY(%s)",
            ),
            (
                "waste",
                WasteProcessor(),
                LevelRow,
                lambda r: (r.raw, r.level, r.flag),
                "SELECT device_id, ts, raw, level, flag FROM waste_levels "
                "WHERE device_id = ANY(%s)",
            ),
            (
                "traffic",
                TrafficProcessor(),
                FlowRow,
                lambda r: (r.vehicles, r.expected, r.score, r.kind),
                "SELECT device_id, ts, vehicles, expected, score, kind FROM traffic_flows "
                "WHERE device_id = ANY(%s)",
            ),
            (
                "lighting",
                lighting_processor(),
                LightingRow,
                lambda r: (r.is_on, r.power_w, r.expected_w, r.baseline_kwh, r.kind),
                "SELECT device_id, ts, is_on, power_w, expected_w, baseline_kwh, kind "
                "FROM lighting_readings WHERE device_id = ANY(%s)",
            ),
        ]
        expected_alerts: set[tuple[str, str]] = set()
        for domain, proc, row_type, values, sql in checks:
            mine = {d: b for d, b in series.items() if d.split("-")[2][0] == domain[0]}
            want = oracle(proc, mine, row_type=row_type, values=values)
            wait_for(
                lambda sql=sql, mine=mine, want=want: len(stored(db, sql, list(mine))) == len(want),
                timeout=300,
                what=f"{domain}: every derived row",
            )
            assert stored(db, sql, list(mine)) == want, f"{domain}: derived rows differ"
            for d, batches in mine.items():
                state = proc.new_state(d)
                for b in batches:
                    for e in proc.process(state, device_id=d, readings=list(b.readings)).events:
                        expected_alerts.add((e.device_id, e.kind))
        assert expected_alerts, "the stream must open alerts"

        def alerts() -> set[tuple[str, str]]:
            with psycopg.connect(db) as conn:
                rows = conn.execute(
                    "SELECT device_id, kind FROM alerts WHERE device_id = ANY(%s)", (ids,)
                ).fetchall()
            return {(r[0], r[1]) for r in rows}

        wait_for(lambda: expected_alerts <= alerts(), timeout=180, what="every expected alert")

        def outbox_done() -> bool:
            with psycopg.connect(db) as conn:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE status <> 'delivered'), count(*) "
                    "FROM webhook_outbox WHERE subscription_id = %s",
                    (sub["id"],),
                ).fetchone()
            assert row is not None
            return row[0] == 0 and row[1] > 0

        wait_for(outbox_done, timeout=240, what="every webhook delivered")
        with psycopg.connect(db) as conn:
            msg_ids = {
                r[0]
                for r in conn.execute(
                    "SELECT msg_id FROM webhook_outbox WHERE subscription_id = %s", (sub["id"],)
                )
            }
        receipts: dict[str, int] = {}
        for req in receiver.requests:
            if req.verified:
                receipts[req.msg_id] = receipts.get(req.msg_id, 0) + 1
        assert msg_ids <= set(receipts), "deliveries missing at the receiver"
        doubled = {m: n for m, n in receipts.items() if n > 1}
        assert not doubled, f"webhook-ids received more than once: {doubled}"
        assert not watch.backwards, watch.backwards
        assert all(t <= READY_WITHIN_S for t in recovery.values()), recovery
        print(f"\nrecovery times (s): { {k: round(v, 1) for k, v in recovery.items()} }")
    finally:
        watch.stop.set()
        probe.close()
        stream.close()
        receiver.close()
        api.delete(f"/v1/webhooks/{sub['id']}")
