"""Device registration rate: POST /v1/devices/bulk from 0 to 10,000 devices, against one by one.

    .venv/bin/python -m bench.registration            # the running local stack (`townpulse up`)

Registers `--total` devices through the bulk endpoint in requests of `--chunk` rows and reports
devices/s per `--step` devices, then registers `--single` devices one by one (POST /v1/devices)
at the start (nearly empty broker) and at the end (full broker), the baseline. The broker's
device count, its version and the size of its dynamic-security file are recorded: the plugin
rewrites that whole file after every command in Mosquitto 2.0, after every command message in
2.1, which is what bounds the rate as it grows.

The devices stay registered; run it on a stack of its own, e.g. a fresh TOWNPULSE_RUN_DIR. It
loads the machine: run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import run_meta, write_result
from bench.e2e_stats import percentiles
from shared.mqtt_admin import DynSecClient
from townpulse.stack import Stack, StackSettings, read_env_file
from townpulse.stack.mosquitto import find_install


def _broker_clients(env: dict[str, str], run_dir: Path) -> int:
    password = (run_dir / "secrets" / "mqtt-admin").read_text().strip()
    client = DynSecClient(
        host=env["MQTT_HOST"], port=int(env["MQTT_PORT"]), username="admin", password=password
    )
    client.connect()
    try:
        (answer,) = client.execute([{"command": "listClients", "count": 1, "offset": 0}])
    finally:
        client.close()
    return int(answer["data"]["totalCount"])


def _dynsec_file_kb(run_dir: Path) -> float | None:
    path = run_dir / "data" / "mosquitto" / "dynamic-security.json"
    return round(path.stat().st_size / 1024, 1) if path.exists() else None


class Probe:
    """A device publishing a QoS 1 reading every `every` s and timing each PUBACK: the broker
    answers nobody while it runs a dynamic-security message, so the longest wait is how long
    registering held up live readings."""

    def __init__(self, api: httpx.Client, *, tag: str, every: float = 0.1) -> None:
        r = api.post("/v1/devices", json={"id": f"{tag}-probe", "domain": "waste"})
        r.raise_for_status()
        creds = r.json()["mqtt"]
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{tag}-probe")
        self._client.username_pw_set(creds["username"], creds["password"])
        self._client.connect(creds["host"], creds["port"], keepalive=60)
        self._client.loop_start()
        self._topic, self._every = creds["topic"], every
        self._waits: list[float] = []
        self._taken = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            payload = json.dumps({"ts": time.time(), "fill_pct": 50})
            t0 = time.perf_counter()
            info = self._client.publish(self._topic, payload, qos=1)
            info.wait_for_publish(timeout=120)
            if info.is_published():
                self._waits.append(time.perf_counter() - t0)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.loop_stop()
        self._client.disconnect()

    def longest_since_last(self) -> float | None:
        """The longest PUBACK wait (ms) since the previous call."""
        waits, self._taken = self._waits[self._taken :], len(self._waits)
        return round(max(waits) * 1000, 1) if waits else None

    def summary(self) -> dict[str, Any]:
        ms = [w * 1000 for w in self._waits]
        return {
            "publishes": len(ms),
            "every_s": self._every,
            **{f"{k}_ms": None if v is None else round(v, 1) for k, v in percentiles(ms).items()},
            "max_ms": round(max(ms), 1) if ms else None,
        }


def _one_by_one(api: httpx.Client, *, tag: str, n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    for i in range(n):
        r = api.post("/v1/devices", json={"id": f"{tag}-{i:05d}", "domain": "waste"})
        r.raise_for_status()
    elapsed = time.perf_counter() - t0
    return {"devices": n, "seconds": round(elapsed, 2), "devices_per_s": round(n / elapsed, 1)}


def _bulk(
    api: httpx.Client,
    args: argparse.Namespace,
    run: str,
    run_dir: Path,
    probe: Probe,
) -> tuple[list[dict[str, Any]], float]:
    """Registers `args.total` devices in bulk requests: a step per `args.step` devices, and the
    seconds spent in the requests."""
    steps: list[dict[str, Any]] = []
    done, step_started, step_seconds = 0, 0, 0.0
    total_seconds = 0.0
    while done < args.total:
        n = min(args.chunk, args.total - done, step_started + args.step - done)
        rows = [{"id": f"regb-{run}-{done + i:05d}", "domain": "waste"} for i in range(n)]
        t0 = time.perf_counter()
        r = api.post("/v1/devices/bulk", json=rows)
        elapsed = time.perf_counter() - t0
        r.raise_for_status()
        body = r.json()
        if body["created"] != n:
            raise SystemExit(f"only {body['created']} of {n} created: {body['rows'][:3]}")
        done += n
        step_seconds += elapsed
        total_seconds += elapsed
        if done - step_started >= args.step or done == args.total:
            rate = (done - step_started) / step_seconds
            steps.append(
                {
                    "from": step_started,
                    "to": done,
                    "seconds": round(step_seconds, 2),
                    "devices_per_s": round(rate, 1),
                    "dynsec_file_kb": _dynsec_file_kb(run_dir),
                    "puback_max_ms": probe.longest_since_last(),
                }
            )
            print(f"{step_started:>6}-{done:<6} {rate:7.1f} devices/s", flush=True)
            step_started, step_seconds = done, 0.0
    return steps, total_seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.registration", description=__doc__)
    parser.add_argument("--total", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=500, help="rows per bulk request")
    parser.add_argument("--step", type=int, default=1000, help="report the rate per this many")
    parser.add_argument("--single", type=int, default=50, help="one-by-one sample size")
    args = parser.parse_args(argv)

    run_dir = Path(os.environ.get("TOWNPULSE_RUN_DIR", Stack().run))
    env = read_env_file(run_dir / "stack.env")
    key = Path(env["ADMIN_API_KEY_FILE"]).read_text().strip()
    run = uuid.uuid4().hex[:6]
    result: dict[str, Any] = {
        "benchmark": "registration",
        "meta": run_meta(),
        "chunk": args.chunk,
        "broker_version": find_install(StackSettings()).version(),
        "broker_clients_at_start": _broker_clients(env, run_dir),
    }
    with httpx.Client(
        base_url=env["API_URL"], headers={"Authorization": f"Bearer {key}"}, timeout=600
    ) as api:
        result["one_by_one_start"] = _one_by_one(api, tag=f"reg1a-{run}", n=args.single)
        with Probe(api, tag=f"reg-{run}") as probe:
            steps, total_seconds = _bulk(api, args, run, run_dir, probe)
        done = steps[-1]["to"]
        result["broker_puback_during_bulk"] = probe.summary()
        result["bulk_steps"] = steps
        result["bulk_total"] = {
            "devices": done,
            "seconds": round(total_seconds, 1),
            "devices_per_s": round(done / total_seconds, 1),
        }
        result["one_by_one_end"] = _one_by_one(api, tag=f"reg1b-{run}", n=args.single)
    result["broker_clients_at_end"] = _broker_clients(env, run_dir)
    result["dynsec_file_kb_at_end"] = _dynsec_file_kb(run_dir)
    path = write_result("registration", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
