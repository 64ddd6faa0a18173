"""Load-generator and baseline processes of the end-to-end benchmark.

Each generator process holds the MQTT connections of its share of the devices on one asyncio loop
(paho driven by the loop's reader/writer callbacks: no thread per connection) and runs the phases
the parent sends it over a pipe. The same paho-on-asyncio client publishes and subscribes in the
Mosquitto-only baseline, so that baseline uses the same client library and QoS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.e2e_stats import due, percentiles, senml_payload, single_payload

# Tick of the pacer: small enough that a 10,000/s share goes out in bursts of ~50, large enough
# that the loop spends its time on sockets rather than timers.
TICK_S = 0.005
# Upper bound of messages sent in one tick, so a starved generator still reads its PUBACKs.
MAX_BURST = 2000
# In flight per device connection: a device sends a few messages a second at most, so this is
# only reached when the system stops acknowledging (which the step then reports).
MAX_INFLIGHT = 100


@dataclass(frozen=True)
class DeviceSpec:
    index: int
    id: str
    domain: str
    username: str
    password: str
    topic: str


@dataclass(frozen=True)
class Phase:
    name: str
    rate: float  # this worker's share of the messages per second
    duration_s: float
    seq_base: int  # every device starts the phase at this sequence number (or above)
    ts0: int  # Unix seconds of sequence number 0
    step_s: int  # seconds between a device's consecutive readings
    senml: int = 0  # readings per message, 0: one flat reading per message
    ack_grace_s: float = 10.0
    # Devices whose every publish time is recorded (latency phase).
    sampled: frozenset[int] = frozenset()
    future_slack_s: int = 240


@dataclass
class PhaseResult:
    name: str
    worker: int
    published: int = 0
    acked: int = 0
    acked_in_window: int = 0
    readings: dict[str, int] = field(default_factory=dict)
    publish_errors: int = 0
    window_s: float = 0.0
    max_seq: int = 0
    cpu_s: float = 0.0
    puback_ms: dict[str, float | None] = field(default_factory=dict)
    # (device index, sequence number, publish wall time) for sampled devices.
    samples: list[tuple[int, int, float]] = field(default_factory=list)
    error: str | None = None


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class LoopClient:
    """A paho client driven by an asyncio loop (paho's own `loop_asyncio` example, slimmed)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        client_id: str,
        username: str,
        password: str,
        clean_session: bool = True,
    ) -> None:
        self.loop = loop
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
            reconnect_on_failure=False,
        )
        self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(MAX_INFLIGHT)
        self.client.max_queued_messages_set(0)
        self.client.on_socket_open = self._open
        self.client.on_socket_close = self._close
        self.client.on_socket_register_write = self._want_write
        self.client.on_socket_unregister_write = self._no_write
        self.client.on_connect = self._on_connect
        self.connected: asyncio.Future[int] = loop.create_future()

    def _open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.add_reader(sock, client.loop_read)

    def _close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)

    def _want_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.add_writer(sock, client.loop_write)

    def _no_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.remove_writer(sock)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if not self.connected.done():
            self.connected.set_result(int(rc.value))

    async def connect(self, host: str, port: int, *, wait_s: float = 30) -> None:
        self.client.connect(host, port, keepalive=60)
        rc = await asyncio.wait_for(self.connected, wait_s)
        if rc != 0:
            raise ConnectionError(f"MQTT connection refused: {rc}")

    def disconnect(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()


async def _misc(clients: list[LoopClient]) -> None:
    """Keepalives and retries for every connection, once a second (paho's `loop_misc`)."""
    while True:
        await asyncio.sleep(1)
        for c in clients:
            c.client.loop_misc()


async def _connect_all(
    clients: list[LoopClient], host: str, port: int, *, parallel: int = 50
) -> None:
    sem = asyncio.Semaphore(parallel)

    async def one(c: LoopClient) -> None:
        async with sem:
            await c.connect(host, port)

    await asyncio.gather(*(one(c) for c in clients))


class DeviceLoad:
    """One worker's devices: their connections, sequence numbers and outstanding PUBACKs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, devices: list[DeviceSpec]) -> None:
        self.devices = devices
        self.seq = [0] * len(devices)
        self.clients: list[LoopClient] = []
        self.pending: dict[tuple[int, int], float] = {}
        self.acked = 0
        self.rtts: list[float] = []
        for d in devices:
            c = LoopClient(
                loop,
                # The broker accepts a device's credentials under its own id only.
                client_id=d.id,
                username=d.username,
                password=d.password,
            )
            c.client.user_data_set(len(self.clients))
            c.client.on_publish = self._on_publish
            self.clients.append(c)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any
    ) -> None:
        sent = self.pending.pop((userdata, mid), None)
        if sent is not None:
            self.acked += 1
            self.rtts.append(time.monotonic() - sent)

    async def run(self, phase: Phase, worker: int) -> PhaseResult:
        res = PhaseResult(name=phase.name, worker=worker)
        n = len(self.devices)
        if n == 0 or phase.rate <= 0:
            return res
        self.seq = [max(s, phase.seq_base) for s in self.seq]
        self.acked, self.rtts = 0, []
        self.pending.clear()
        per_msg = max(phase.senml, 1)
        readings = dict.fromkeys({d.domain for d in self.devices}, 0)
        cpu0 = _cpu()
        start = time.monotonic()
        end = start + phase.duration_s
        sent = 0
        turn = 0
        while True:
            # The last tick is clamped to the window's end: what is due by then still goes out.
            now = min(time.monotonic(), end)
            burst = min(due(phase.rate, now - start) - sent, MAX_BURST)
            for _ in range(burst):
                i = turn
                turn = (turn + 1) % n
                d = self.devices[i]
                s = self.seq[i]
                ts = phase.ts0 + s * phase.step_s
                if ts + (per_msg - 1) * phase.step_s > time.time() + phase.future_slack_s:
                    res.error = "timestamp budget exhausted: fewer devices or shorter phases"
                    break
                if phase.senml:
                    payload = senml_payload(
                        domain=d.domain,
                        device=d.index,
                        device_id=d.id,
                        ts0=ts,
                        step_s=phase.step_s,
                        n=phase.senml,
                    )
                else:
                    payload = single_payload(domain=d.domain, device=d.index, ts=ts)
                info = self.clients[i].client.publish(d.topic, payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    res.publish_errors += 1
                    continue
                self.pending[(i, info.mid)] = time.monotonic()
                if d.index in phase.sampled:
                    res.samples.append((d.index, s, time.time()))
                self.seq[i] = s + per_msg
                readings[d.domain] += per_msg
                sent += 1
            if res.error or (now >= end and sent >= due(phase.rate, end - start)):
                break
            await asyncio.sleep(TICK_S)
        # Longer than the duration only if the generator fell behind (then the rate is lower).
        res.window_s = time.monotonic() - start
        res.acked_in_window = self.acked
        ack_deadline = time.monotonic() + phase.ack_grace_s
        # PUBACKs arrive in paho callbacks: a short poll is simpler than another event.
        while self.pending and time.monotonic() < ack_deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        res.published, res.acked, res.readings = sent, self.acked, readings
        res.max_seq = max(self.seq)
        res.cpu_s = _cpu() - cpu0
        res.puback_ms = {
            k: (v * 1000 if v is not None else None) for k, v in percentiles(self.rtts).items()
        }
        return res


async def _worker(
    conn: Connection, worker: int, host: str, port: int, devices: list[DeviceSpec]
) -> None:
    loop = asyncio.get_running_loop()
    load = DeviceLoad(loop, devices)
    misc = asyncio.create_task(_misc(load.clients))
    try:
        started = time.monotonic()
        await _connect_all(load.clients, host, port)
        conn.send({"connected": len(load.clients), "seconds": time.monotonic() - started})
        while True:
            cmd = await asyncio.to_thread(conn.recv)
            if cmd is None:
                break
            try:
                conn.send(await load.run(cmd, worker))
            except Exception as exc:  # reported to the parent, which decides
                conn.send(PhaseResult(name=cmd.name, worker=worker, error=repr(exc)))
    finally:
        misc.cancel()
        for c in load.clients:
            c.disconnect()
        # Let the DISCONNECT packets go out before the process exits.
        await asyncio.sleep(0.2)


def generator_main(
    conn: Connection, worker: int, host: str, port: int, devices: list[DeviceSpec]
) -> None:
    """Entry point of a generator process (multiprocessing, spawn)."""
    try:
        asyncio.run(_worker(conn, worker, host, port, devices))
    except Exception as exc:
        with contextlib.suppress(Exception):
            conn.send({"error": repr(exc)})
    finally:
        conn.close()


# ---- Mosquitto alone -------------------------------------------------------------------------


@dataclass(frozen=True)
class MqttBaseline:
    host: str
    port: int
    username: str
    password: str
    topic_prefix: str
    connections: int
    duration_s: float
    payload_size: int = 40


async def _mqtt_publish(conn: Connection, spec: MqttBaseline, worker: int) -> None:
    loop = asyncio.get_running_loop()
    clients = [
        LoopClient(
            loop,
            client_id=f"bench-pub-{worker}-{k}-{uuid.uuid4().hex[:6]}",
            username=spec.username,
            password=spec.password,
        )
        for k in range(spec.connections)
    ]
    misc = asyncio.create_task(_misc(clients))
    await _connect_all(clients, spec.host, spec.port)
    payload = b'{"ts":1700000000,"fill_pct":50.5}'.ljust(spec.payload_size, b" ")
    acked = 0
    # Closed loop: each connection keeps a window of QoS 1 messages in flight, a new one for
    # each PUBACK, so the broker (and the clients) are the only limit.
    window = 20
    inflight = [0] * len(clients)

    def on_publish(client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        nonlocal acked
        acked += 1
        inflight[userdata] -= 1

    for k, c in enumerate(clients):
        c.client.user_data_set(k)
        c.client.on_publish = on_publish
    conn.send("ready")
    await asyncio.to_thread(conn.recv)
    cpu0 = _cpu()
    start = time.monotonic()
    published = 0
    while time.monotonic() - start < spec.duration_s:
        for k, c in enumerate(clients):
            while inflight[k] < window:
                c.client.publish(f"{spec.topic_prefix}/{worker}/{k}", payload, qos=1)
                inflight[k] += 1
                published += 1
        await asyncio.sleep(0)
    elapsed = time.monotonic() - start
    acked_in_window = acked
    deadline = time.monotonic() + 10
    while any(inflight) and time.monotonic() < deadline:  # noqa: ASYNC110 - see DeviceLoad.run
        await asyncio.sleep(0.05)
    conn.send(
        {
            "published": published,
            "acked": acked,
            "acked_in_window": acked_in_window,
            "window_s": elapsed,
            "cpu_s": _cpu() - cpu0,
        }
    )
    misc.cancel()
    for c in clients:
        c.disconnect()
    await asyncio.sleep(0.2)


async def _mqtt_subscribe(conn: Connection, spec: MqttBaseline) -> None:
    loop = asyncio.get_running_loop()
    # A persistent session on a fixed topic filter, like the gateway's (clean_session=False).
    c = LoopClient(
        loop,
        client_id=f"bench-sub-{uuid.uuid4().hex[:6]}",
        username=spec.username,
        password=spec.password,
        clean_session=False,
    )
    count = 0
    times: list[float] = []

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count % 100 == 0:
            times.append(time.monotonic())

    subscribed: asyncio.Future[None] = loop.create_future()

    def on_subscribe(client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        if not subscribed.done():
            subscribed.set_result(None)

    c.client.on_message = on_message
    c.client.on_subscribe = on_subscribe
    misc = asyncio.create_task(_misc([c]))
    await c.connect(spec.host, spec.port)
    c.client.subscribe(f"{spec.topic_prefix}/#", qos=1)
    await asyncio.wait_for(subscribed, 10)
    conn.send("ready")
    cpu0 = _cpu()
    stop = await asyncio.to_thread(conn.recv)  # the parent says when the publishers are done
    assert stop == "stop"
    # Whatever is still queued at the broker arrives within a moment of the publishers' end.
    last = -1
    while count != last:
        last = count
        await asyncio.sleep(0.5)
    conn.send({"received": count, "times": times, "cpu_s": _cpu() - cpu0})
    misc.cancel()
    c.client.unsubscribe(f"{spec.topic_prefix}/#")
    c.disconnect()
    await asyncio.sleep(0.2)


def mqtt_publisher_main(conn: Connection, spec: MqttBaseline, worker: int) -> None:
    try:
        asyncio.run(_mqtt_publish(conn, spec, worker))
    finally:
        conn.close()


def mqtt_subscriber_main(conn: Connection, spec: MqttBaseline) -> None:
    try:
        asyncio.run(_mqtt_subscribe(conn, spec))
    finally:
        conn.close()


# ---- Kafka alone -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaBaseline:
    bootstrap: str
    topic: str
    duration_s: float
    value: bytes
    partitions: int


async def _kafka_produce(conn: Connection, spec: KafkaBaseline) -> None:
    from shared.kafka import create_producer

    # The gateway's own producer configuration (acks=all, idempotent, linger 5 ms).
    producer = create_producer(spec.bootstrap, client_id=f"bench-producer-{os.getpid()}")
    await producer.start()
    try:
        conn.send("ready")
        await asyncio.to_thread(conn.recv)
        cpu0 = _cpu()
        start = time.monotonic()
        sent = 0
        futures: list[asyncio.Future[Any]] = []
        while time.monotonic() - start < spec.duration_s:
            # Keyed like the gateway's records (by device), spread over the partitions.
            futures.append(
                await producer.send(spec.topic, spec.value, key=b"dev-%d" % (sent % 2000))
            )
            sent += 1
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
        elapsed = time.monotonic() - start
        conn.send({"produced": sent, "window_s": elapsed, "cpu_s": _cpu() - cpu0})
    finally:
        await producer.stop()


async def _kafka_consume(conn: Connection, spec: KafkaBaseline) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=spec.bootstrap,
        client_id=f"bench-consumer-{os.getpid()}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=5000,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(spec.topic, p) for p in range(spec.partitions)])
        conn.send("ready")
        cpu0 = _cpu()
        count = 0
        last_at = 0.0
        target: int | None = None
        deadline = float("inf")
        while time.time() < deadline:
            if target is None and conn.poll():
                target = conn.recv()
                # Everything produced is acknowledged by then: a minute to read what is left.
                deadline = time.time() + 60
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for msgs in batch.values():
                count += len(msgs)
                last_at = time.time()
            if target is not None and count >= target:
                break
        conn.send({"consumed": count, "last_at": last_at, "cpu_s": _cpu() - cpu0})
    finally:
        await consumer.stop()


def kafka_producer_main(conn: Connection, spec: KafkaBaseline) -> None:
    try:
        asyncio.run(_kafka_produce(conn, spec))
    finally:
        conn.close()


def kafka_consumer_main(conn: Connection, spec: KafkaBaseline) -> None:
    try:
        asyncio.run(_kafka_consume(conn, spec))
    finally:
        conn.close()
