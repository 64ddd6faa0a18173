"""What Mosquitto's persistence settings cost: QoS 1 publish rate by autosave policy.

    python -m bench.mosquitto_autosave [--messages 20000]

A private broker (the stack's Mosquitto binary, persistence on, its own port and directory) per
case; one device publishes `--messages` QoS 1 messages (100 in flight) and the rate at which the
broker acknowledges them is measured, with the gateway's persistent session either connected
(it receives everything as it comes) or away (every message queues for it, as when the gateway
falls behind). Mosquitto 2.0 writes its whole state on each save, queued messages included.

Then why a backlog feeds itself: Mosquitto reads one packet per client per pass of its network
loop, and saves after the pass when enough has changed. The gateway is one client that
acknowledges every message, the devices are many: with 200 devices publishing `--ack-messages`
messages, the gateway (acknowledging each from another thread, as the real one does once Kafka
has the record) has sent every PUBACK; 3 s later the broker is stopped (it saves on the way out)
and the messages still waiting for a PUBACK in its file are counted: PUBACKs the broker had not
read yet. With one device, the same.
"""

from __future__ import annotations

import argparse
import os
import pwd
import queue
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import command_line, run_meta, write_result
from townpulse.stack import StackSettings
from townpulse.stack.mosquitto import find_install

# (label, autosave lines): the stack's policy first.
POLICIES = (
    ("every second (the stack's)", "autosave_on_changes false\nautosave_interval 1\n"),
    ("every change", "autosave_on_changes true\nautosave_interval 1\n"),
    ("every 100 changes", "autosave_on_changes true\nautosave_interval 100\n"),
    ("every 1,000 changes", "autosave_on_changes true\nautosave_interval 1000\n"),
    ("every 30 minutes (Mosquitto's default)", "autosave_interval 1800\n"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_broker(policy: str) -> tuple[subprocess.Popen[bytes], int, str]:
    """A private broker with this autosave policy: (process, port, data directory)."""
    data = tempfile.mkdtemp(prefix="townpulse-autosave-")
    if os.geteuid() == 0:  # Mosquitto drops to its own user, which must own its data.
        pw = pwd.getpwnam("mosquitto")
        os.chown(data, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    conf = os.path.join(data, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {data}/\n{policy}max_queued_messages 0\n"
            "max_inflight_messages 1000\n"
        )
    # Our own binary and a file we just wrote.
    # The stack's own broker (deploy/build-mosquitto.sh's, else the machine's).
    mosquitto = str(find_install(StackSettings()).broker)
    broker = subprocess.Popen([mosquitto, "-c", conf], stderr=subprocess.DEVNULL)  # noqa: S603
    return broker, port, data


def measure(policy: str, *, gateway_connected: bool, messages: int) -> float:
    """Messages acknowledged per second by a fresh broker with this autosave policy."""
    broker, port, data = _start_broker(policy)
    try:
        time.sleep(0.5)
        gateway = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="gateway",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        gateway.connect("127.0.0.1", port)
        gateway.subscribe("sensors/#", qos=1)
        gateway.loop_start()
        time.sleep(0.3)
        if not gateway_connected:
            gateway.disconnect()
            gateway.loop_stop()
        done = threading.Event()
        acked = [0]

        def on_publish(c: mqtt.Client, u: Any, mid: int, rc: Any, p: Any) -> None:
            acked[0] += 1
            if acked[0] >= messages:
                done.set()

        device = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="device", protocol=mqtt.MQTTv311
        )
        device.on_publish = on_publish
        device.max_inflight_messages_set(100)
        device.max_queued_messages_set(0)
        device.connect("127.0.0.1", port)
        device.loop_start()
        start = time.monotonic()
        for _ in range(messages):
            device.publish("sensors/energy/meter-1", b'{"kwh": 1.25, "ts": 1764547200}', qos=1)
        done.wait(600)
        elapsed = time.monotonic() - start
        device.loop_stop()
        if gateway_connected:
            gateway.loop_stop()
        return acked[0] / elapsed
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


# Mosquitto's persistence file (src/persist.h, MOSQ_DB_VERSION 6 in 2.0 and 2.1): a 15-byte
# magic, a CRC and a version, then chunks of (type, length) big-endian; a client message chunk
# starts with its store id, mid, client-id length, QoS, state, retain/dup and direction.
_HEADER = 23
_CLIENT_MSG = 3
_WAIT_FOR_PUBACK = 3


def awaiting_puback(db: bytes, client_id: str) -> int:
    """Messages to `client_id` that a saved Mosquitto state still waits a PUBACK for."""
    n, off = 0, _HEADER
    while off + 8 <= len(db):
        kind, length = struct.unpack(">II", db[off : off + 8])
        chunk = db[off + 8 : off + 8 + length]
        off += 8 + length
        if kind == _CLIENT_MSG:
            _store, _mid, id_len, _qos, state, _rd, _dir = struct.unpack(">QHHBBBB", chunk[:16])
            n += state == _WAIT_FOR_PUBACK and chunk[16 : 16 + id_len].decode() == client_id
    return n


def unread_pubacks(policy: str, *, devices: int, messages: int, settle_s: float = 3.0) -> int:
    """PUBACKs the gateway had sent but the broker had not read `settle_s` after the last one."""
    broker, port, data = _start_broker(policy)
    clients: list[mqtt.Client] = []
    try:
        time.sleep(0.5)
        to_ack: queue.Queue[tuple[int, int] | None] = queue.Queue()
        gateway = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="gateway",
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        gateway.on_message = lambda c, u, m: to_ack.put((m.mid, m.qos))
        gateway.connect("127.0.0.1", port)
        gateway.subscribe("sensors/#", qos=1)
        gateway.loop_start()
        clients.append(gateway)
        acked = [0]

        def acker() -> None:
            while (item := to_ack.get()) is not None:
                gateway.ack(*item)
                acked[0] += 1

        thread = threading.Thread(target=acker, daemon=True)
        thread.start()
        publishers = []
        for k in range(devices):
            c = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=f"device-{k}", protocol=mqtt.MQTTv311
            )
            c.connect("127.0.0.1", port)
            c.loop_start()
            publishers.append(c)
        clients += publishers
        time.sleep(0.3)
        for i in range(messages):
            publishers[i % devices].publish("sensors/energy/meter-1", b'{"kwh": 1.25}', qos=1)
            if i % 200 == 199:
                time.sleep(0.02)  # about the pace of a busy town, not a flood
        deadline = time.monotonic() + 120
        while acked[0] < messages and time.monotonic() < deadline:
            time.sleep(0.1)
        if acked[0] < messages:
            raise RuntimeError(f"the gateway acknowledged {acked[0]} of {messages}")
        time.sleep(settle_s)
        to_ack.put(None)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=120)
        for c in clients:
            c.loop_stop()
    try:
        return awaiting_puback(Path(data, "mosquitto.db").read_bytes(), "gateway")
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mosquitto_autosave", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--ack-messages", type=int, default=20_000)
    args = parser.parse_args(argv)
    rows = []
    for label, policy in POLICIES:
        row: dict[str, Any] = {"policy": label}
        for connected in (True, False):
            rate = measure(policy, gateway_connected=connected, messages=args.messages)
            row["gateway_connected" if connected else "gateway_away"] = round(rate)
            print(f"{label}, gateway {'connected' if connected else 'away'}: {rate:.0f} msg/s")
        rows.append(row)
    unread = []
    for label, policy in (POLICIES[0], POLICIES[1]):
        for devices in (1, 200):
            n = unread_pubacks(policy, devices=devices, messages=args.ack_messages)
            unread.append({"policy": label, "devices": devices, "unread_pubacks": n})
            print(f"{label}, {devices} device(s): {n} of {args.ack_messages} PUBACKs unread")
    result = {
        "benchmark": "mosquitto_autosave",
        "messages": args.messages,
        "rows": rows,
        "ack_messages": args.ack_messages,
        "unread_pubacks": unread,
        "meta": run_meta(command=command_line("bench.mosquitto_autosave", argv)),
        "broker_version": find_install(StackSettings()).version(),
    }
    print(f"wrote {write_result('mosquitto_autosave', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
