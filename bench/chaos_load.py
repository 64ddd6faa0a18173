"""The chaos benchmark's load generator: devices that publish at a steady rate and survive faults.

Each device holds its own MQTT connection (bench.e2e_load's paho-on-asyncio `LoopClient`), QoS 1.
Unlike the e2e generator, a device whose connection drops (Mosquitto stopped) reconnects once a
second, and paho sends its unacknowledged messages again: what a real device does. Every
message is tracked: its publish time, its PUBACK, and whether it was in flight when its
connection dropped (so MQTT may deliver it twice, by design of QoS 1).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as mqtt

from bench.e2e_load import TICK_S, DeviceSpec, LoopClient, _connect_all, _cpu
from bench.e2e_stats import due, single_payload

# Upper bound of messages sent in one tick, so a starved generator still reads its PUBACKs.
MAX_BURST = 500
# A device's queue while its broker is away (30 s at a few messages a second fits easily).
MAX_INFLIGHT = 100
# How often a device whose connection dropped tries again (a device's own retry period).
RECONNECT_EVERY_S = 1.0
PROGRESS_EVERY_S = 30.0
BATTERY_LOW, BATTERY_OK = 5.0, 80.0


@dataclass(frozen=True)
class ChaosPhase:
    rate: float
    duration_s: float
    ts0: int  # Unix seconds of sequence number 0
    step_s: int  # seconds between a device's consecutive readings
    # Every n-th message of an energy meter is a battery level instead, alternately low and
    # fine, so a threshold rule opens and resolves alerts (0: never).
    alert_every: int
    ack_grace_s: float


@dataclass
class ChaosResult:
    published: list[int] = field(default_factory=list)  # per device: sequence numbers used
    acked: list[bytes] = field(default_factory=list)  # per device: 1 per acknowledged seq
    sent_at: list[bytes] = field(default_factory=list)  # per device: float32 seconds since start
    resent: list[list[int]] = field(default_factory=list)  # per device: seqs in flight at a drop
    publish_errors: int = 0
    disconnects: int = 0
    reconnects: int = 0
    window_s: float = 0.0
    start_wall: float = 0.0
    pending_at_end: int = 0
    cpu_s: float = 0.0
    error: str | None = None


def battery_message(seq: int, alert_every: int) -> float | None:
    """The battery level an energy meter sends as its `seq`-th message, or None (a reading).

    >>> [battery_message(s, 3) for s in range(9)]
    [None, None, 5.0, None, None, 80.0, None, None, 5.0]
    """
    if alert_every <= 0 or seq % alert_every != alert_every - 1:
        return None
    return BATTERY_LOW if (seq // alert_every) % 2 == 0 else BATTERY_OK


def payload(device: DeviceSpec, seq: int, phase: ChaosPhase) -> bytes:
    ts = phase.ts0 + seq * phase.step_s
    level = battery_message(seq, phase.alert_every) if device.domain == "energy" else None
    if level is not None:
        return b'{"ts":%d,"battery_pct":%r}' % (ts, level)
    return single_payload(domain=device.domain, device=device.index, ts=ts)


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] generator: {msg}", flush=True)


class Devices:
    def __init__(self, loop: asyncio.AbstractEventLoop, devices: list[DeviceSpec]) -> None:
        self.devices = devices
        self.clients: list[LoopClient] = []
        self.down = [False] * len(devices)
        self.pending: list[dict[int, int]] = [{} for _ in devices]  # mid -> seq
        self.acked = [bytearray() for _ in devices]
        self.sent_at = [array.array("f") for _ in devices]
        self.resent: list[set[int]] = [set() for _ in devices]
        self.disconnects = self.reconnects = 0
        for i, d in enumerate(devices):
            # The broker binds each device's credentials to its own id as client id (README).
            c = LoopClient(loop, client_id=d.id, username=d.username, password=d.password)
            c.client.max_inflight_messages_set(MAX_INFLIGHT)
            c.client.user_data_set(i)
            c.client.on_publish = self._on_publish
            c.client.on_disconnect = self._on_disconnect
            self.clients.append(c)

    def _on_publish(self, client: mqtt.Client, i: Any, mid: int, rc: Any, props: Any) -> None:
        seq = self.pending[i].pop(mid, None)
        if seq is not None:
            self.acked[i][seq] = 1

    def _on_disconnect(
        self, client: mqtt.Client, i: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        if not self.down[i]:
            self.down[i] = True
            self.disconnects += 1
        # paho sends these again after the reconnection: the broker may have had them.
        self.resent[i].update(self.pending[i].values())

    async def keep_connected(self) -> None:
        """Keepalives (paho's `loop_misc`) and reconnections, once a second."""
        while True:
            await asyncio.sleep(RECONNECT_EVERY_S)
            for i, c in enumerate(self.clients):
                if self.down[i]:
                    try:
                        c.client.reconnect()
                    except OSError:
                        continue
                    self.down[i] = False
                    self.reconnects += 1
                c.client.loop_misc()

    def pending_count(self) -> int:
        return sum(len(p) for p in self.pending)

    async def run(self, phase: ChaosPhase) -> ChaosResult:
        res = ChaosResult(start_wall=time.time())
        n = len(self.devices)
        seq = [0] * n
        cpu0 = _cpu()
        start = time.monotonic()
        end = start + phase.duration_s
        next_progress = start + PROGRESS_EVERY_S
        sent = turn = 0
        while True:
            now = min(time.monotonic(), end)
            burst = min(due(phase.rate, now - start) - sent, MAX_BURST)
            for _ in range(burst):
                i = turn
                turn = (turn + 1) % n
                s = seq[i]
                info = self.clients[i].client.publish(
                    self.devices[i].topic, payload(self.devices[i], s, phase), qos=1
                )
                # NO_CONN: paho keeps the message and sends it once connected again.
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    res.publish_errors += 1
                    continue
                self.pending[i][info.mid] = s
                self.acked[i].append(0)
                self.sent_at[i].append(time.monotonic() - start)
                seq[i] = s + 1
                sent += 1
            if time.monotonic() >= next_progress:
                next_progress += PROGRESS_EVERY_S
                log(
                    f"{sent} published ({sent / (time.monotonic() - start):.0f}/s), "
                    f"{self.pending_count()} awaiting PUBACK, {sum(self.down)} disconnected"
                )
            if now >= end and sent >= due(phase.rate, end - start):
                break
            await asyncio.sleep(TICK_S)
        res.window_s = time.monotonic() - start
        log(f"load window over after {res.window_s:.0f} s: waiting for the last PUBACKs")
        deadline = time.monotonic() + phase.ack_grace_s
        while self.pending_count() and time.monotonic() < deadline:  # noqa: ASYNC110 - callbacks
            await asyncio.sleep(0.2)
        res.published = seq
        res.acked = [bytes(a) for a in self.acked]
        res.sent_at = [a.tobytes() for a in self.sent_at]
        res.resent = [sorted(r) for r in self.resent]
        res.disconnects, res.reconnects = self.disconnects, self.reconnects
        res.pending_at_end = self.pending_count()
        res.cpu_s = _cpu() - cpu0
        return res


async def _worker(conn: Connection, host: str, port: int, devices: list[DeviceSpec]) -> None:
    loop = asyncio.get_running_loop()
    load = Devices(loop, devices)
    await _connect_all(load.clients, host, port)
    keeper = asyncio.create_task(load.keep_connected())
    try:
        conn.send({"connected": len(load.clients)})
        phase = await asyncio.to_thread(conn.recv)
        try:
            conn.send(await load.run(phase))
        except Exception as exc:  # reported to the parent, which decides
            conn.send(ChaosResult(error=repr(exc)))
    finally:
        keeper.cancel()
        for c in load.clients:
            c.disconnect()
        await asyncio.sleep(0.2)


def generator_main(conn: Connection, host: str, port: int, devices: list[DeviceSpec]) -> None:
    """Entry point of the generator process (multiprocessing, spawn)."""
    try:
        asyncio.run(_worker(conn, host, port, devices))
    except Exception as exc:
        with contextlib.suppress(Exception):
            conn.send({"error": repr(exc)})
    finally:
        conn.close()
