"""What Mosquitto's persistence settings cost: QoS 1 publish rate by autosave policy.

    python -m bench.mosquitto_autosave [--messages 20000]

A private broker (the stack's Mosquitto binary, persistence on, its own port and directory) per
case; one device publishes `--messages` QoS 1 messages (100 in flight) and the rate at which the
broker acknowledges them is measured, with the gateway's persistent session either connected
(it receives everything as it comes) or away (every message queues for it, as when the gateway
falls behind). Mosquitto 2.0 writes its whole state on each save, queued messages included.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import command_line, run_meta, write_result

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
# (label, autosave lines): the stack's policy first.
POLICIES = (
    ("every change (the stack's)", "autosave_on_changes true\nautosave_interval 1\n"),
    ("every 100 changes", "autosave_on_changes true\nautosave_interval 100\n"),
    ("every 1,000 changes", "autosave_on_changes true\nautosave_interval 1000\n"),
    ("every 30 minutes (Mosquitto's default)", "autosave_interval 1800\n"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def measure(policy: str, *, gateway_connected: bool, messages: int) -> float:
    """Messages acknowledged per second by a fresh broker with this autosave policy."""
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
    broker = subprocess.Popen([MOSQUITTO, "-c", conf], stderr=subprocess.DEVNULL)  # noqa: S603
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mosquitto_autosave", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args(argv)
    rows = []
    for label, policy in POLICIES:
        row: dict[str, Any] = {"policy": label}
        for connected in (True, False):
            rate = measure(policy, gateway_connected=connected, messages=args.messages)
            row["gateway_connected" if connected else "gateway_away"] = round(rate)
            print(f"{label}, gateway {'connected' if connected else 'away'}: {rate:.0f} msg/s")
        rows.append(row)
    result = {
        "benchmark": "mosquitto_autosave",
        "messages": args.messages,
        "rows": rows,
        "meta": run_meta(command=command_line("bench.mosquitto_autosave", argv)),
    }
    print(f"wrote {write_result('mosquitto_autosave', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
