"""Faults under load (issue 27): a steady stream through the stack while components fail.

Needs the local stack (`townpulse up --no-sim`). Registers devices through the API (the town's
mix: 20% energy, 70% waste, 10% traffic), each publishing over its own MQTT connection at QoS 1,
at a steady total rate for the whole run. Every `--alert-every`-th message of an energy meter
is a battery level, alternately low and fine, which a threshold rule made for the run turns
into alerts that open and resolve, delivered to a webhook receiver (alerts and webhooks
flowing). Meanwhile, one fault at a time at random (fixed seed, logged):

- SIGKILL of a service, by the pid in its pid file (its keeper starts it again);
- PostgreSQL, Kafka or Mosquitto stopped for 10-30 s and started again by the stack's own code;
- the disk of Kafka's log directory full for a minute: the log directory is moved, for the run,
  onto a tmpfs of `--kafka-disk-mb` (this stack's own, nothing else shares it), filled to its
  limit with a file that is then removed.

Reports readings published, acknowledged (PUBACK), stored, lost (acknowledged, never stored)
and doubled (records per (device, ts) on Kafka's readings topics, before the database's unique
key hides them; and the storage's own duplicate counter), alerts and webhook deliveries
expected against received, and per fault the time until every service's /readyz held again.
Writes `bench/results/chaos.json`; `python -m bench.report` puts it in BENCHMARKS.md.

    .venv/bin/python -m bench.chaos [--rate 500 --duration 1800 --seed 27 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.chaos_load import (
    BATTERY_LOW,
    ChaosPhase,
    ChaosResult,
    battery_message,
    generator_main,
)
from bench.chaos_stats import (
    FAULT_KINDS,
    CounterDelta,
    Fault,
    Key,
    account,
    attribute,
    plan_faults,
    recovery_s,
)
from bench.common import run_meta, write_result
from bench.e2e import Env, log, purge_rows, register_devices, remove_devices
from bench.e2e_stats import DEFAULT_SHARES
from shared.topics import READINGS_PARTITIONS, READINGS_TOPICS
from testing.alerts_support import subscribe
from testing.prometheus import metric_value
from testing.webhook_receiver import WebhookReceiver
from townpulse.stack import SERVICES, Stack, read_env_file

SERVICE_NAMES = tuple(spec.name for spec in SERVICES)
READY_WITHIN_S = 60.0
# Readiness must hold this long to count: a service may be ready when a component returns and
# drop a moment later, once it notices (a failed query, a producer error) and restarts.
STABLE_S = 10.0
# After this long without recovery (twice the target) the harness gives up on waiting, starts a
# dead infrastructure component itself (an operator would) and goes on with the next fault.
GIVE_UP_S = 120.0
FILL_FILE = "chaos-disk-fill"
# Readings published this long before a fault began were still in flight when it began.
IN_FLIGHT_S = 5.0


@dataclass
class Readiness:
    """Samples every service's /readyz once a second, and the storage's duplicate counter."""

    urls: dict[str, str]
    storage_url: str
    samples: list[tuple[float, bool]] = field(default_factory=list)
    not_ready: list[tuple[float, list[str]]] = field(default_factory=list)
    duplicates: CounterDelta = field(default_factory=CounterDelta)
    # (time, what the counter added since the previous sample), when it added something.
    duplicate_steps: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self.stop.wait(1.0):
                t = time.monotonic()
                down = []
                for name, url in self.urls.items():
                    try:
                        ok = client.get(f"{url}/readyz").status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if not ok:
                        down.append(name)
                self.samples.append((t, not down))
                if down:
                    self.not_ready.append((t, down))
                with contextlib.suppress(httpx.HTTPError):
                    text = client.get(f"{self.storage_url}/metrics").text
                    before = self.duplicates.total
                    self.duplicates.feed(
                        metric_value(
                            text,
                            "townpulse_storage_rows_total",
                            table="readings",
                            outcome="duplicate",
                        )
                    )
                    if self.duplicates.total > before:
                        self.duplicate_steps.append((t, int(self.duplicates.total - before)))

    def recovery(self, end: float) -> float | None:
        return recovery_s(list(self.samples), end=end, stable_s=STABLE_S)

    def not_ready_between(self, lo: float, hi: float) -> list[str]:
        return sorted({n for t, names in list(self.not_ready) if lo <= t <= hi for n in names})


# ---- Kafka's log directory on a tmpfs of its own ------------------------------------------------


class KafkaDisk:
    """The stack's Kafka log directory moved onto a size-limited tmpfs for the run, and back.

    Only this stack's Kafka writes there, so filling it touches nothing else on the machine.
    """

    def __init__(self, stack: Stack, size_mb: int) -> None:
        self.stack = stack
        self.size_mb = size_mb
        self.dir = stack.run / "data" / "kafka"
        self.saved = stack.run / "data" / "kafka.chaos-saved"
        self.mounted = False

    def setup(self) -> None:
        if os.path.ismount(self.dir):
            log(f"{self.dir} is already a mount point: using it as it is")
            return
        # Room for what Kafka already holds, plus `size_mb` for the run: a stack with a long
        # history must not fail the copy (a partial copy, copied back, would cost its data).
        held_mb = _size_mb(self.dir)
        size_mb = held_mb + self.size_mb
        log(f"moving Kafka's log directory ({held_mb} MB) onto a {size_mb} MB tmpfs")
        self.stack.stop("kafka")
        self.dir.rename(self.saved)
        self.dir.mkdir(mode=0o700)
        try:
            _run("mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(self.dir))
            self.mounted = True
            _run("cp", "-a", f"{self.saved}/.", str(self.dir))
        except subprocess.CalledProcessError:
            # Back as it was: the saved directory is the only whole copy.
            if self.mounted:
                _run("umount", str(self.dir))
                self.mounted = False
            self.dir.rmdir()
            self.saved.rename(self.dir)
            self.stack.start_kafka()
            raise
        self.stack.start_kafka()

    def teardown(self) -> None:
        if not self.mounted:
            return
        log("moving Kafka's log directory back to disk")
        self.stack.stop("kafka")
        back = self.stack.run / "data" / "kafka.chaos-back"
        shutil.rmtree(back, ignore_errors=True)
        _run("cp", "-a", str(self.dir), str(back))
        (back / FILL_FILE).unlink(missing_ok=True)
        _run("umount", str(self.dir))
        self.dir.rmdir()
        back.rename(self.dir)
        shutil.rmtree(self.saved)
        self.stack.start_kafka()

    def fill(self) -> int:
        """Write a file until the filesystem refuses (ENOSPC); returns its size."""
        path = self.dir / FILL_FILE
        chunk = b"\0" * (1 << 20)
        written = 0
        with open(path, "wb", buffering=0) as f:
            try:
                while True:
                    written += f.write(chunk)
            except OSError:
                # The last megabyte did not fit: the rest of it, a page at a time.
                with contextlib.suppress(OSError):
                    while True:
                        written += f.write(chunk[:4096])
        return written

    def free_mb(self) -> float:
        st = os.statvfs(self.dir)
        return round(st.f_bavail * st.f_frsize / 2**20, 1)

    def unfill(self) -> None:
        (self.dir / FILL_FILE).unlink(missing_ok=True)


def _size_mb(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) // 2**20 + 1


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)  # noqa: S603 - fixed commands


# ---- faults --------------------------------------------------------------------------------------


def inject(stack: Stack, disk: KafkaDisk | None, fault: Fault) -> dict[str, Any]:
    """Cause one fault and end it; returns what happened (blocking: run in a thread)."""
    out: dict[str, Any] = {}
    if fault.kind == "kill":
        out["pid"] = stack.pid(stack.services.process(fault.target))
        stack.kill(fault.target)
    elif fault.kind == "down":
        out["pid"] = stack.pid(fault.target)
        t = time.monotonic()
        stack.stop(fault.target)
        out["stop_s"] = round(time.monotonic() - t, 1)
        time.sleep(fault.hold_s)
        t = time.monotonic()
        {
            "postgres": stack.start_postgres,
            "kafka": stack.start_kafka,
            "mosquitto": stack.start_mosquitto,
        }[fault.target]()
        out["start_s"] = round(time.monotonic() - t, 1)
    elif fault.kind == "disk":
        if disk is None:
            raise RuntimeError("a disk fault needs --kafka-disk-mb")
        out["filled_mb"] = round(disk.fill() / 2**20, 1)
        out["free_mb_when_full"] = disk.free_mb()
        time.sleep(fault.hold_s)
        out["kafka_alive_at_end"] = stack.pid("kafka") is not None
        disk.unfill()
    return out


def restart_if_dead(stack: Stack, fault: Fault) -> str | None:
    """After giving up on recovery: start an infrastructure component that is not running."""
    name = fault.target if fault.kind in ("down", "disk") else None
    if name and stack.pid(name) is None:
        {
            "postgres": stack.start_postgres,
            "kafka": stack.start_kafka,
            "mosquitto": stack.start_mosquitto,
        }[name]()
        return name
    return None


async def run_faults(
    *,
    stack: Stack,
    disk: KafkaDisk | None,
    faults: list[Fault],
    ready: Readiness,
    start: float,
    load_end: float,
) -> list[dict[str, Any]]:
    done: list[dict[str, Any]] = []
    for k, fault in enumerate(faults, 1):
        wait = start + fault.at_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        began = time.monotonic()
        if began > load_end:
            log(f"fault {k} ({fault.label}) not started: the load window is over")
            break
        log(f"fault {k}/{len(faults)}: {fault.label}")
        rec: dict[str, Any] = {
            "n": k,
            **fault.as_dict(),
            "started_s": round(began - start, 1),
            "late_s": round(began - start - fault.at_s, 1),
        }
        try:
            rec.update(await asyncio.to_thread(inject, stack, disk, fault))
        except Exception as exc:
            rec["error"] = repr(exc)
            log(f"fault {k}: {exc!r}")
        ended = time.monotonic()
        rec["ended_s"] = round(ended - start, 1)
        recovered: float | None = None
        while time.monotonic() - ended < GIVE_UP_S:
            await asyncio.sleep(1.0)
            recovered = ready.recovery(ended)
            if recovered is not None:
                break
        rec["recovery_s"] = recovered
        rec["recovered_within_target"] = recovered is not None and recovered <= READY_WITHIN_S
        if recovered is None:
            restarted = await asyncio.to_thread(restart_if_dead, stack, fault)
            rec["restarted_by_harness"] = restarted
            log(f"fault {k}: not ready after {GIVE_UP_S:.0f} s; restarted: {restarted}")
            again = time.monotonic()
            after: float | None = None
            while after is None and time.monotonic() - again < GIVE_UP_S:
                await asyncio.sleep(1.0)
                after = ready.recovery(again)
            rec["recovery_after_harness_restart_s"] = after
            log(f"fault {k}: every service ready {after} s after the harness's restart")
        else:
            log(f"fault {k}: every service ready {recovered} s after its end")
        rec["not_ready_services"] = ready.not_ready_between(began, time.monotonic())
        done.append(rec)
    return done


# ---- Kafka: records per (device, ts) -----------------------------------------------------------


async def end_offsets(bootstrap: str) -> dict[str, list[int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p)
            for t in READINGS_TOPICS.values()
            for p in range(READINGS_PARTITIONS)
        ]
        ends = await consumer.end_offsets(tps)
        return {
            t: [ends[TopicPartition(t, p)] for p in range(READINGS_PARTITIONS)]
            for t in READINGS_TOPICS.values()
        }
    finally:
        await consumer.stop()


async def count_kafka(
    bootstrap: str, since: dict[str, list[int]], prefix: str
) -> tuple[Counter[Key], dict[Key, float], int]:
    """Committed records per (device, ts) on the readings topics after `since`, for devices
    whose id starts with `prefix`; when each key's second record was produced (Unix seconds: the
    fault it followed); and how many records were read."""
    until = await end_offsets(bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    counts: Counter[Key] = Counter()
    again: dict[Key, float] = {}
    read = 0
    try:
        todo = {}
        for topic, starts in since.items():
            for p, lo in enumerate(starts):
                if until[topic][p] > lo:
                    todo[TopicPartition(topic, p)] = until[topic][p]
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, since[tp.topic][tp.partition])
        while todo:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20000)
            for tp, msgs in batch.items():
                for m in msgs:
                    read += 1
                    doc = json.loads(m.value)
                    device = doc["device_id"]
                    if device.startswith(prefix):
                        for r in doc["readings"]:
                            ts = int(datetime.fromisoformat(r["ts"]).timestamp())
                            counts[(device, ts)] += 1
                            if counts[(device, ts)] == 2:
                                again[(device, ts)] = m.timestamp / 1000
                if msgs and msgs[-1].offset + 1 >= todo.get(tp, 0):
                    todo.pop(tp, None)
            if not batch:
                # Transaction markers occupy offsets too: the position says where we are.
                for tp in list(todo):
                    if await consumer.position(tp) >= todo[tp]:
                        todo.pop(tp)
    finally:
        await consumer.stop()
    return counts, again, read


# ---- the run ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rate", type=float, default=500, help="messages per second, in total")
    p.add_argument("--duration", type=float, default=1800, help="load window (s)")
    p.add_argument("--devices", type=int, default=300)
    # The first seed whose 30-minute schedule has every kind of fault, kills of the gateway and
    # the storage (the exactly-once path) among them, and one full disk (which stops Kafka for
    # minutes): any seed is reproducible, this one covers the most.
    p.add_argument("--seed", type=int, default=406)
    p.add_argument("--fault-every", type=float, default=120, help="seconds between faults, ...")
    p.add_argument("--fault-jitter", type=float, default=60, help="... plus up to this (random)")
    p.add_argument("--warmup", type=float, default=60, help="before the first fault (s)")
    p.add_argument("--faults", nargs="*", default=list(FAULT_KINDS), choices=FAULT_KINDS)
    p.add_argument("--kafka-disk-mb", type=int, default=1024, help="Kafka's tmpfs (0: none)")
    p.add_argument("--alert-every", type=int, default=200, help="energy: battery every n-th")
    p.add_argument("--ts-step", type=int, default=60, help="seconds between a device's readings")
    p.add_argument("--ack-grace", type=float, default=120, help="after the window, for PUBACKs")
    p.add_argument("--drain-timeout", type=float, default=600)
    p.add_argument("--keep-data", action="store_true", help="keep the run's rows in the database")
    p.add_argument("--output", default="chaos", help="result name under bench/results/")
    return p.parse_args(argv)


async def wait_stored(db_url: str, ids: list[str], want: int, within_s: float) -> int:
    """Poll the count of stored readings until it reaches `want` and holds still, or timeout."""
    deadline = time.monotonic() + within_s
    last, still_since = -1, time.monotonic()
    while True:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as db:
            row = await (
                await db.execute("SELECT count(*) FROM readings WHERE device_id = ANY(%s)", (ids,))
            ).fetchone()
        n = int(row[0]) if row else 0
        if n != last:
            last, still_since = n, time.monotonic()
        if (n >= want and time.monotonic() - still_since >= 10) or time.monotonic() > deadline:
            return n
        await asyncio.sleep(2)


async def outbox(db_url: str, sub_id: str) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as db:
        rows = await (
            await db.execute(
                "SELECT status, count(*) FROM webhook_outbox WHERE subscription_id = %s GROUP BY 1",
                (sub_id,),
            )
        ).fetchall()
        ids = await (
            await db.execute(
                "SELECT msg_id FROM webhook_outbox WHERE subscription_id = %s", (sub_id,)
            )
        ).fetchall()
    return {"by_status": {r[0]: r[1] for r in rows}, "msg_ids": {r[0] for r in ids}}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    env = Env.load()
    stack: Stack = env.stack
    urls = {
        name: read_env_file(stack.stack_env_file)[f"{name.upper()}_URL"] for name in SERVICE_NAMES
    }
    run = uuid.uuid4().hex[:6]
    if args.kafka_disk_mb and os.geteuid() != 0:
        # Mounting the tmpfs needs root: without it, no disk to fill safely.
        log("not root: Kafka's log directory stays where it is, and no disk faults")
        args.kafka_disk_mb = 0
    if not args.kafka_disk_mb:
        args.faults = [k for k in args.faults if k != "disk"]
    faults = plan_faults(
        seed=args.seed,
        duration_s=args.duration,
        every_s=args.fault_every,
        jitter_s=args.fault_jitter,
        warmup_s=args.warmup,
        services=SERVICE_NAMES,
        kinds=args.faults,
    )
    log(f"run {run}, seed {args.seed}: {len(faults)} faults planned")
    for f in faults:
        log(f"  at {f.at_s:7.1f} s: {f.label}")
    out: dict[str, Any] = {
        "benchmark": "chaos",
        "meta": run_meta(),
        "run": run,
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "planned_faults": [f.as_dict() for f in faults],
    }
    disk = KafkaDisk(stack, args.kafka_disk_mb) if args.kafka_disk_mb else None
    api = httpx.AsyncClient(
        base_url=env.api_url, headers={"Authorization": f"Bearer {env.admin_key}"}, timeout=60
    )
    sync_api = httpx.Client(
        base_url=env.api_url, headers={"Authorization": f"Bearer {env.admin_key}"}, timeout=60
    )
    receiver = WebhookReceiver().listen()
    ready = Readiness(urls=urls, storage_url=env.storage_url)
    ready_thread = threading.Thread(target=ready.run, daemon=True)
    made: list[str] = []
    rule_id = sub_id = None
    proc = None
    try:
        if disk is not None:
            disk.setup()
        ready_thread.start()
        kind = f"chaos.battery_low_{run}"
        r = await api.post(
            "/v1/alert-rules",
            json={
                "name": f"chaos {run}",
                "domain": "energy",
                "metric": "battery_pct",
                "op": "<=",
                "threshold": 10,
                "kind": kind,
                # Each low level opens an alert, the next fine one resolves it at once.
                "cooldown_s": 0,
            },
        )
        r.raise_for_status()
        rule_id = r.json()["id"]
        # Retries every 2 s: a delivery that failed during an outage is retried within the run.
        sub = await asyncio.to_thread(
            subscribe, sync_api, receiver.url, kinds=[kind], retry_schedule_s=[2] * 20
        )
        sub_id, receiver.secret = sub["id"], sub["secret"]
        log(f"registering {args.devices} devices (bench-{run}-*)")
        devices, made = await register_devices(api, run, args.devices, DEFAULT_SHARES)
        since = await end_offsets(env.kafka)
        # Timestamps start far enough back that the run's last ones are not in the future.
        ts0 = int(time.time()) - int(args.duration * args.rate / len(devices) + 10) * args.ts_step
        ts0 = ts0 // 60 * 60
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=generator_main,
            args=(child, env.mqtt_host, env.mqtt_port, devices),
            name="bench-chaos-gen",
        )
        proc.start()
        child.close()
        hello = await asyncio.to_thread(parent.recv)
        if "error" in hello:
            raise RuntimeError(f"generator failed: {hello['error']}")
        log(f"{hello['connected']} devices connected; load at {args.rate:g} msg/s")
        phase = ChaosPhase(
            rate=args.rate,
            duration_s=args.duration,
            ts0=ts0,
            step_s=args.ts_step,
            alert_every=args.alert_every,
            ack_grace_s=args.ack_grace,
        )
        parent.send(phase)
        out["ts0"] = ts0
        start = time.monotonic()
        fault_task = asyncio.create_task(
            run_faults(
                stack=stack,
                disk=disk,
                faults=faults,
                ready=ready,
                start=start,
                load_end=start + args.duration,
            )
        )
        res: ChaosResult = await asyncio.to_thread(parent.recv)
        if res.error:
            raise RuntimeError(f"generator failed: {res.error}")
        out["faults"] = await fault_task
        log(
            f"load over: {sum(res.published)} published in {res.window_s:.0f} s, "
            f"{res.pending_at_end} still awaiting PUBACK"
        )
        out.update(
            await settle_and_count(
                args, env, run, devices, res, since, ts0, out["faults"], start, ready
            )
        )
        # Alerts and webhooks.
        expected_alerts = sum(
            1
            for i, d in enumerate(devices)
            if d.domain == "energy"
            for s in range(res.published[i])
            if battery_message(s, args.alert_every) == BATTERY_LOW and res.acked[i][s]
        )
        deadline = time.monotonic() + 300
        ob = await outbox(env.database_url, sub_id)
        while time.monotonic() < deadline and set(ob["by_status"]) - {"delivered"}:
            await asyncio.sleep(5)
            ob = await outbox(env.database_url, sub_id)
        async with await psycopg.AsyncConnection.connect(env.database_url, autocommit=True) as db:
            row = await (
                await db.execute(
                    "SELECT count(*), coalesce(sum(count), 0) FROM alerts WHERE kind = %s",
                    (kind,),
                )
            ).fetchone()
        receipts = Counter(q.msg_id for q in receiver.requests if q.verified and q.status == 200)
        out["alerts"] = {
            "expected": expected_alerts,
            "received": int(row[0]) if row else 0,
            "signals_counted": int(row[1]) if row else 0,
        }
        out["webhooks"] = {
            "expected": len(ob["msg_ids"]),
            "outbox_by_status": ob["by_status"],
            "received": len(set(receipts) & ob["msg_ids"]),
            "received_more_than_once": sum(1 for n in receipts.values() if n > 1),
            "requests": len(receiver.requests),
        }
        out["generator"] = {
            "disconnects": res.disconnects,
            "reconnects": res.reconnects,
            "publish_errors": res.publish_errors,
            "cpu_s": round(res.cpu_s, 1),
            "window_s": round(res.window_s, 1),
        }
    finally:
        ready.stop.set()
        if proc is not None:
            proc.join(30)
            if proc.is_alive():  # ours, by handle
                proc.terminate()
        receiver.close()
        if sub_id:
            await api.delete(f"/v1/webhooks/{sub_id}")
        if rule_id:
            await api.delete(f"/v1/alert-rules/{rule_id}")
        if made:
            log(f"removing {len(made)} devices")
            await remove_devices(api, made)
            if not args.keep_data:
                await purge_rows(env.database_url, made)
        await api.aclose()
        await asyncio.to_thread(sync_api.close)
        if disk is not None:
            disk.teardown()
    return out


async def settle_and_count(
    args: argparse.Namespace,
    env: Env,
    run: str,
    devices: list[Any],
    res: ChaosResult,
    since: dict[str, list[int]],
    ts0: int,
    faults: list[dict[str, Any]],
    start: float,
    ready: Readiness,
) -> dict[str, Any]:
    import array

    ids = [d.id for d in devices]
    acked: set[Key] = set()
    published: list[Key] = []
    sent_at: dict[Key, float] = {}
    resent: set[Key] = set()
    for i, d in enumerate(devices):
        times = array.array("f")
        times.frombytes(res.sent_at[i])
        for s in range(res.published[i]):
            key = (d.id, ts0 + s * args.ts_step)
            published.append(key)
            sent_at[key] = float(times[s])
            if res.acked[i][s]:
                acked.add(key)
        resent.update((d.id, ts0 + s * args.ts_step) for s in res.resent[i])
    log(f"waiting for {len(acked)} acknowledged readings to be stored")
    await wait_stored(env.database_url, ids, len(acked), args.drain_timeout)
    async with await psycopg.AsyncConnection.connect(env.database_url, autocommit=True) as db:
        rows = await (
            await db.execute(
                "SELECT device_id, extract(epoch FROM ts)::bigint FROM readings "
                "WHERE device_id = ANY(%s)",
                (ids,),
            )
        ).fetchall()
    stored = {(r[0], int(r[1])) for r in rows}
    log("counting the run's records on Kafka")
    counts, again, read = await count_kafka(env.kafka, since, f"bench-{run}-")
    acc = account(
        published=published, acked=acked, stored=stored, kafka_counts=counts, resent=resent
    )
    windows = [(f"#{f['n']} {f['label']}", f["started_s"]) for f in faults]
    lost_keys = acc.pop("lost_keys")
    doubled_keys = acc.pop("doubled_sent_once_keys")
    # A reading lost to a fault may have been published a moment before it (in flight then).
    lead = [(label, at - IN_FLIGHT_S) for label, at in windows]
    acc["lost_by_fault"] = attribute((sent_at[k] for k in lost_keys), lead)
    # A doubled reading's second record is produced after the fault began (a redelivery), while
    # the reading itself may have been published just before it: attributed by the former.
    acc["doubled_by_fault"] = attribute(
        (t - res.start_wall for k, t in again.items() if k in sent_at), windows
    )
    acc["doubled_sent_once_by_fault"] = attribute(
        (again[k] - res.start_wall for k in doubled_keys if k in again), windows
    )
    acc["lost_examples"] = [list(k) for k in lost_keys[:10]]
    acc["doubled_sent_once_examples"] = [list(k) for k in doubled_keys[:10]]
    acc["kafka_records_read"] = read
    acc["storage_duplicates_counted"] = int(ready.duplicates.total)
    acc["storage_duplicates_by_fault"] = attribute(
        (t - start for t, n in ready.duplicate_steps for _ in range(n)), windows
    )
    acc["achieved_msgs_per_s"] = round(len(published) / res.window_s, 1) if res.window_s else 0
    acc["acked_at_end_of_grace_pending"] = res.pending_at_end
    return {"readings": acc}


def summarise(out: dict[str, Any]) -> dict[str, Any]:
    r = out.get("readings") or {}
    faults = out.get("faults") or []
    rec = [f.get("recovery_s") for f in faults]
    return {
        "offered_msgs_per_s": out["settings"]["rate"],
        "achieved_msgs_per_s": r.get("achieved_msgs_per_s"),
        "faults": len(faults),
        "lost_acked": r.get("lost_acked"),
        "doubled": r.get("doubled"),
        "doubled_sent_once": r.get("doubled_sent_once"),
        "worst_recovery_s": None if None in rec or not rec else max(rec),
        "every_fault_recovered_within_60_s": all(f.get("recovered_within_target") for f in faults),
        "targets": {"lost_acked": 0, "doubled": 0, "recovery_s_max": READY_WITHIN_S},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = asyncio.run(amain(args))
    result = {**summarise(out), **out}
    path = write_result(args.output, result)
    log(f"wrote {path}")
    print(json.dumps(summarise(out), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
