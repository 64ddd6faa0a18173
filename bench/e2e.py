"""End-to-end throughput and latency of the running stack (issue 6), with its parts' limits.

Needs the local stack (`make up`). Registers N devices through the API (town mix: 20% energy,
70% waste, 10% traffic), each publishing on its own MQTT connection with its own credentials from
2 generator processes, and measures:

1. the limits of the parts, in the same run: Mosquitto alone (a private broker with the stack's
   configuration and the same paho-on-asyncio client, QoS 1, publishers -> one subscriber) and
   Kafka alone (aiokafka producer with the gateway's settings -> consumer, temporary topic);
2. the highest single-reading rate sustained end to end: short steps up a ladder, then the best
   rate again for the full duration. Sustained = every message acknowledged, every reading stored
   and every energy reading scored within a grace period after the window;
3. the same with SenML packs of 50 readings per message;
4. publish -> stored, publish -> scored latency at 1,000 msg/s (p50/p95/p99), and the same at
   other rates and at the sustained one (a latency-versus-load curve, drawn by bench.report);
5. CPU seconds and peak memory of every stack process in each phase, and the generator's own;
6. py-spy profiles of the Python services at the sustained rate.

Writes `bench/results/e2e.json` (+ `e2e_profile_<service>.txt`), then removes its devices (and,
unless --keep-data, their rows), the temporary topic, the private broker and its processes.

    .venv/bin/python -m bench.e2e [--devices 2000 --duration 60 --step-duration 15 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg

from bench.common import RESULTS, run_meta, write_result
from bench.e2e_load import (
    DeviceSpec,
    KafkaBaseline,
    MqttBaseline,
    Phase,
    PhaseResult,
    generator_main,
    kafka_consumer_main,
    kafka_producer_main,
    mqtt_publisher_main,
    mqtt_subscriber_main,
)
from bench.e2e_stats import (
    DEFAULT_SHARES,
    Quiet,
    StepSearch,
    before_after,
    bottleneck,
    domain_plan,
    over_time,
    percentiles,
    sample_per_domain,
    split,
    sustained,
)
from townpulse import tls
from townpulse.stack import (
    SERVICES,
    Stack,
    StackSettings,
    read_env_file,
)
from townpulse.stack.mosquitto import find_install, render_config

T = TypeVar("T")
PYTHON_SERVICES = tuple(spec.name for spec in SERVICES)
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Publish -> scored p99 at 1,000 msg/s (issue #13; results before it was recorded lack it).
SCORED_P99_MS_MAX = 1000
# Derived tables a domain service fills, one row per scored reading. Waste and traffic services
# do not exist yet; when they do, a `<domain>_scores` table is picked up (see `scored_tables`).
SCORED_TABLES = {"energy": "energy_scores"}
# The benchmark's own processes, watched beside the stack's: not the platform it measures.
LOAD_GENERATOR, BENCH_PARENT = "load_generator", "bench_parent"
# Latency percentiles are also reported per slice of the run, to tell a steady tail from pauses.
LATENCY_SLICE_S = 1.0
# ... and apart for the phase's first seconds, when new devices send their first readings.
FIRST_SECONDS_S = 5.0


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


# ---- processes: CPU and memory ---------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, CPU ticks of the process and of its exited, waited-for children)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        # Fields after the command name: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
        ppid = int(fields[1])
        ticks = sum(int(x) for x in fields[11:15])
        table[int(entry.name)] = (ppid, ticks)
    return table


def _tree(
    root: int, table: dict[int, tuple[int, int]], apart: frozenset[int] = frozenset()
) -> list[int]:
    """`root` and its descendants, except those under a pid in `apart` (another component:
    a service is its keeper's child and must not be counted twice)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table and (pid == root or pid not in apart):
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return total - idle, total


def _busy_cores(start: tuple[int, int], end: tuple[int, int]) -> float:
    """The machine's busy cores between two `_machine_busy_ticks` samples."""
    return (os.cpu_count() or 1) * (end[0] - start[0]) / max(1, end[1] - start[1])


class ProcessWatch:
    """CPU seconds per component between two marks; peak memory sampled once a second.

    A component is a process and its descendants (PostgreSQL is one process per connection).
    Memory is the resident set of a single process; for a process tree, the sum of its members'
    proportional set sizes (PSS), which counts shared memory once instead of once per backend.
    """

    def __init__(self, components: dict[str, list[int]]) -> None:
        self.components = components
        self._roots = frozenset(p for roots in components.values() for p in roots)
        self._peak: dict[str, float] = {}
        self._peak_all: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def cpu_ticks(self) -> dict[str, int]:
        table = _proc_table()
        return {
            name: sum(table[p][1] for root in roots for p in _tree(root, table, self._roots))
            for name, roots in self.components.items()
        }

    def memory_mb(self) -> dict[str, float]:
        table = _proc_table()
        out: dict[str, float] = {}
        for name, roots in self.components.items():
            pids = [p for root in roots for p in _tree(root, table, self._roots)]
            if len(roots) == 1 and len(pids) == 1:
                kb = _status_kb(pids[0], "VmRSS")
            else:
                kb = sum(_pss_kb(p) for p in pids)
            out[name] = kb / 1024
        return out

    def _sample_loop(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        mem = self.memory_mb()
        with self._lock:
            for k, v in mem.items():
                self._peak[k] = max(self._peak.get(k, 0.0), v)
                self._peak_all[k] = max(self._peak_all.get(k, 0.0), v)

    def reset_peaks(self) -> None:
        with self._lock:
            self._peak = {}

    def peaks(self, *, overall: bool = False) -> dict[str, float]:
        with self._lock:
            return {k: round(v, 1) for k, v in (self._peak_all if overall else self._peak).items()}

    def lifetime_hwm_mb(self) -> dict[str, float]:
        """VmHWM of each component's main process: its peak since it started (other loads too)."""
        return {
            name: round(_status_kb(roots[0], "VmHWM") / 1024, 1)
            for name, roots in self.components.items()
            if roots
        }


@dataclass
class Mark:
    at: float
    ticks: dict[str, int]
    machine: tuple[int, int]

    @classmethod
    def now(cls, watch: ProcessWatch) -> Mark:
        return cls(time.time(), watch.cpu_ticks(), _machine_busy_ticks())

    def since(self, start: Mark) -> dict[str, Any]:
        wall = self.at - start.at
        cpu = {
            k: round((self.ticks.get(k, 0) - start.ticks.get(k, 0)) / CLK_TCK, 2)
            for k in self.ticks
        }
        return {
            "wall_s": round(wall, 2),
            "cpu_s": cpu,
            "cpu_cores": {k: round(v / wall, 3) if wall > 0 else None for k, v in cpu.items()},
            "machine_busy_cores": round(_busy_cores(start.machine, self.machine), 3),
        }


# ---- the stack and its devices ----------------------------------------------------------------


@dataclass
class Env:
    api_url: str
    admin_key: str
    mqtt_host: str
    mqtt_port: int
    kafka: str
    database_url: str
    storage_url: str
    stack: Stack

    @classmethod
    def load(cls) -> Env:
        stack = Stack()
        env = read_env_file(stack.stack_env_file)
        if "API_URL" not in env:
            raise SystemExit(f"{stack.stack_env_file} missing: start the stack with `make up`")
        return cls(
            api_url=env["API_URL"],
            admin_key=Path(env["ADMIN_API_KEY_FILE"]).read_text().strip(),
            mqtt_host=env["MQTT_HOST"],
            mqtt_port=int(env["MQTT_PORT"]),
            kafka=env["KAFKA_BOOTSTRAP"],
            database_url=env["DATABASE_URL"],
            storage_url=env["STORAGE_URL"],
            stack=stack,
        )

    def stack_pids(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for f in sorted(self.stack.pids.glob("*.pid")):
            name = f.stem
            pid = self.stack.pid(name)
            if pid is None:
                continue
            # Scaled-out gateways (gateway-2, ...) count as one component, "gateway".
            base = name.split("-")[0] if name.split("-")[0] in PYTHON_SERVICES else name
            out.setdefault(base, []).append(pid)
        return out


async def _bounded(n: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    sem = asyncio.Semaphore(n)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with sem:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs))


async def register_devices(
    api: httpx.AsyncClient, run: str, n: int, shares: dict[str, float]
) -> tuple[list[DeviceSpec], list[str]]:
    """Register `n` devices (ids `bench-<run>-<n>`); returns them and the ids to remove later."""
    plan = domain_plan(n, shares)
    made: list[str] = []
    devices: list[DeviceSpec] = []
    try:
        # The bulk endpoint: hundreds per request (the API's limit is 1,000 rows).
        for start in range(0, n, 500):
            rows = [
                {"id": f"bench-{run}-{i:05d}", "domain": d}
                for i, d in enumerate(plan[start : start + 500], start=start)
            ]
            # Past a few thousand devices a request of 500 takes minutes (bench.registration).
            r = await api.post("/v1/devices/bulk", json=rows, timeout=900)
            r.raise_for_status()
            for row in r.json()["rows"]:
                if row["status"] != "created":
                    raise RuntimeError(f"device {row['id']} not created: {row}")
                made.append(row["id"])
                creds = row["mqtt"]
                devices.append(
                    DeviceSpec(
                        start + row["row"],
                        row["id"],
                        row["device"]["domain"],
                        creds["username"],
                        creds["password"],
                        creds["topic"],
                    )
                )
    except BaseException:
        await remove_devices(api, made)
        raise
    return devices, made


async def remove_devices(api: httpx.AsyncClient, ids: Sequence[str]) -> int:
    def job(device_id: str) -> Callable[[], Awaitable[int]]:
        async def go() -> int:
            r = await api.delete(f"/v1/devices/{device_id}")
            return 1 if r.status_code in (204, 404) else 0

        return go

    return sum(await _bounded(8, [job(d) for d in ids]))


# ---- generator processes ----------------------------------------------------------------------


class Generators:
    """The load-generator processes (spawned, so they share nothing with this one)."""

    def __init__(self, env: Env, devices: list[DeviceSpec], workers: int) -> None:
        ctx = mp.get_context("spawn")
        self.procs: list[BaseProcess] = []
        self.pipes: list[Connection] = []
        for w, idx in enumerate(split([d.domain for d in devices], workers)):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=generator_main,
                args=(child, w, env.mqtt_host, env.mqtt_port, [devices[i] for i in idx]),
                name=f"bench-e2e-gen-{w}",
            )
            p.start()
            child.close()
            self.procs.append(p)
            self.pipes.append(parent)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    async def connected(self) -> list[dict[str, Any]]:
        out = [await asyncio.to_thread(_recv, c, 600) for c in self.pipes]
        for o in out:
            if "error" in o:
                raise RuntimeError(f"generator failed: {o['error']}")
        return out

    async def run(self, phases: list[Phase]) -> list[PhaseResult]:
        for c, ph in zip(self.pipes, phases, strict=True):
            c.send(ph)
        timeout = phases[0].duration_s + phases[0].ack_grace_s + 120
        results = [await asyncio.to_thread(_recv, c, timeout) for c in self.pipes]
        for r in results:
            if not isinstance(r, PhaseResult):
                raise RuntimeError(f"generator failed: {r}")
        return results

    def close(self) -> None:
        for c in self.pipes:
            with contextlib.suppress(OSError):
                c.send(None)
        _join_or_terminate(self.procs)


def _recv(conn: Connection, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError("a benchmark process did not answer")
    return conn.recv()


def _join_or_terminate(procs: Sequence[BaseProcess], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():  # ours, by handle: never by name
            p.terminate()
            p.join(5)


# ---- database polling -------------------------------------------------------------------------


async def scored_tables(db: psycopg.AsyncConnection[Any]) -> dict[str, str]:
    """The derived per-reading tables that exist: energy_scores, and waste/traffic ones if any."""
    out: dict[str, str] = {}
    for domain in DEFAULT_SHARES:
        table = SCORED_TABLES.get(domain, f"{domain}_scores")
        row = await (await db.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))).fetchone()
        if row and row[0]:
            out[domain] = table
    return out


async def count_rows(
    db: psycopg.AsyncConnection[Any], table: str, ids: Sequence[str], lo: datetime, hi: datetime
) -> int:
    row = await (
        await db.execute(
            # The table name comes from SCORED_TABLES or the fixed "readings", never from input.
            f"SELECT count(*) FROM {table} WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s",  # noqa: S608
            (list(ids), lo, hi),
        )
    ).fetchone()
    return int(row[0]) if row else 0


class ArrivalPoller:
    """Polls for rows of sampled devices and notes when each first became visible.

    A row is visible once its transaction committed; a query sees what committed before it
    started, so "first seen at the start of poll k" bounds the commit time within one interval.
    """

    def __init__(
        self, db_url: str, table: str, ids: Sequence[str], since: datetime, interval_s: float
    ) -> None:
        self.db_url, self.table, self.ids = db_url, table, list(ids)
        self.marks = [since] * len(self.ids)
        self.index = {d: i for i, d in enumerate(self.ids)}
        self.interval_s = interval_s
        self.seen: dict[tuple[str, datetime], float] = {}
        self.received: dict[tuple[str, datetime], datetime] = {}
        self.starts: list[float] = []
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def query(self) -> tuple[str, tuple[Any, ...]]:
        """Rows of the sampled devices above the lowest of their marks.

        One range scan of the table's time index, not one look-up per device and chunk: a lateral
        join per device took 18 ms of execution a poll, 20 polls a second, at 1,000 msg/s
        (pg_stat_statements; this query 10 ms; idle, 5 ms against 3). A row committed late has
        a time below other devices' marks but above its own device's, hence the lowest mark.
        """
        extra = ", received_at" if self.table == "readings" else ", NULL::timestamptz"
        sql = (
            f"SELECT device_id, ts{extra} FROM {self.table} "  # noqa: S608 - a fixed table name
            "WHERE ts > %s AND device_id = ANY(%s)"
        )
        return sql, (min(self.marks), self.ids)

    def observe(self, rows: Sequence[tuple[str, datetime, datetime | None]], at: float) -> None:
        """Note rows not seen before as first seen at `at` (the poll's start)."""
        for d, ts, received in rows:
            self.seen.setdefault((d, ts), at)
            if received is not None:
                self.received.setdefault((d, ts), received)
            i = self.index[d]
            if ts > self.marks[i]:
                self.marks[i] = ts

    async def poll(self, db: psycopg.AsyncConnection[Any]) -> None:
        started = time.time()
        self.starts.append(started)
        sql, params = self.query()
        self.observe(await (await db.execute(sql, params)).fetchall(), started)

    async def run(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as db:
            while not self._stop.is_set():
                started = time.time()
                await self.poll(db)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stop.wait(), max(0.0, self.interval_s - (time.time() - started))
                    )
            # The phase stops the poller once it has counted every row, possibly after this
            # poller's last look: one more, or a row committed in between is never seen.
            await self.poll(db)

    def resolution_ms(self) -> float | None:
        gaps = [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)]
        return round(1000 * sum(gaps) / len(gaps), 1) if gaps else None


async def storage_lag(client: httpx.AsyncClient, url: str) -> float | None:
    try:
        text = (await client.get(f"{url}/metrics")).text
    except httpx.HTTPError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("townpulse_storage_lag_records{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def settle(args: argparse.Namespace) -> dict[str, Any]:
    """Before a latency measurement: wait until the machine is quiet, so the phase measures the
    system at its rate and not its recovery from the overload before (the SenML search leaves
    minutes of work: backlogs, checkpoints, PostgreSQL's vacuum)."""
    if args.settle_max <= 0:
        return {"waited_s": 0.0, "quiet": None, "busy_cores": None}
    quiet = Quiet(cores=args.settle_cores, for_s=args.settle_for)
    start = time.monotonic()
    prev = _machine_busy_ticks()
    while True:
        await asyncio.sleep(1.0)
        cur = _machine_busy_ticks()
        busy = _busy_cores(prev, cur)
        prev = cur
        waited = time.monotonic() - start
        is_quiet = quiet.sample(waited, busy)
        if is_quiet or waited >= args.settle_max:
            log(f"waited {waited:.0f} s for a quiet machine (busy {busy:.2f} cores): {is_quiet}")
            return {"waited_s": round(waited, 1), "quiet": is_quiet, "busy_cores": round(busy, 2)}


# ---- one phase ----------------------------------------------------------------------------------


@dataclass
class Ctx:
    env: Env
    args: argparse.Namespace
    devices: list[DeviceSpec]
    gens: Generators
    watch: ProcessWatch
    scored: dict[str, str]
    ts0: int
    next_seq: int = 0
    phases: list[dict[str, Any]] = field(default_factory=list)

    def ts(self, seq: int) -> datetime:
        return datetime.fromtimestamp(self.ts0 + seq * self.args.ts_step, UTC)

    def ids(self, domain: str | None = None) -> list[str]:
        return [d.id for d in self.devices if domain is None or d.domain == domain]


async def run_phase(
    ctx: Ctx,
    *,
    name: str,
    rate: float,
    duration: float,
    senml: int = 0,
    sample_every: int = 0,
    profile: bool = False,
) -> dict[str, Any]:
    """Offer `rate` messages/s for `duration` s; wait (grace) for the rows; report the step.

    A phase that measures latency (`sample_every`) starts on a quiet machine (`settle`).
    """
    args = ctx.args
    settled = await settle(args) if sample_every else None
    workers = len(ctx.gens.pipes)
    seq_base = ctx.next_seq
    sampled = (
        frozenset(sample_per_domain([d.domain for d in ctx.devices], sample_every))
        if sample_every
        else frozenset()
    )
    sample_ids = [ctx.devices[i].id for i in sorted(sampled)]
    pollers: list[ArrivalPoller] = []
    if sampled:
        since = ctx.ts(seq_base) - (ctx.ts(1) - ctx.ts(0))
        pollers.append(
            ArrivalPoller(ctx.env.database_url, "readings", sample_ids, since, args.poll_interval)
        )
        for domain, table in ctx.scored.items():
            ids = [ctx.devices[i].id for i in sorted(sampled) if ctx.devices[i].domain == domain]
            if ids:
                pollers.append(
                    ArrivalPoller(ctx.env.database_url, table, ids, since, args.poll_interval)
                )
    poll_tasks = [asyncio.create_task(p.run()) for p in pollers]
    lags: list[float] = []
    stop_lag = asyncio.Event()

    async def watch_lag() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while not stop_lag.is_set():
                lag = await storage_lag(client, ctx.env.storage_url)
                if lag is not None:
                    lags.append(lag)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_lag.wait(), 1.0)

    lag_task = asyncio.create_task(watch_lag())
    profilers = start_profilers(ctx, duration) if profile else {}
    # A service restarted since the last phase (by whoever shares the stack) has a new pid.
    ctx.watch.components.update(ctx.env.stack_pids())
    ctx.watch.reset_peaks()
    mark0 = Mark.now(ctx.watch)
    log(f"{name}: {rate:g} msg/s for {duration:g} s" + (f" (SenML x{senml})" if senml else ""))
    phase_args = [
        Phase(
            name=name,
            rate=rate / workers,
            duration_s=duration,
            seq_base=seq_base,
            ts0=ctx.ts0,
            step_s=args.ts_step,
            senml=senml,
            ack_grace_s=args.grace,
            sampled=sampled,
        )
        for _ in range(workers)
    ]
    results = await ctx.gens.run(phase_args)
    window_end = mark0.at + max(r.window_s for r in results)
    errors = [r.error for r in results if r.error]
    ctx.next_seq = max(r.max_seq for r in results) + 1
    lo, hi = ctx.ts(seq_base), ctx.ts(ctx.next_seq)
    published = sum(r.published for r in results)
    acked = sum(r.acked for r in results)
    readings: dict[str, int] = {}
    for r in results:
        for k, v in r.readings.items():
            readings[k] = readings.get(k, 0) + v
    expected_rows = sum(readings.values())
    expected_scored = sum(readings.get(d, 0) for d in ctx.scored)
    stored = scored = 0
    complete_at: float | None = None
    async with await psycopg.AsyncConnection.connect(ctx.env.database_url, autocommit=True) as db:
        deadline = window_end + args.grace
        while True:
            stored = await count_rows(db, "readings", ctx.ids(), lo, hi)
            scored = 0
            for domain, table in ctx.scored.items():
                scored += await count_rows(db, table, ctx.ids(domain), lo, hi)
            if stored >= expected_rows and scored >= expected_scored:
                complete_at = time.time()
                break
            if time.time() > deadline:
                break
            await asyncio.sleep(0.5)
    mark1 = Mark.now(ctx.watch)
    stop_lag.set()
    await lag_task
    for p in pollers:
        p.stop()
    await asyncio.gather(*poll_tasks)
    window = max(r.window_s for r in results)
    ok, why = sustained(
        target_rate=rate,
        achieved_rate=published / window if window else 0,
        published=published,
        acked=acked,
        expected_rows=expected_rows,
        stored=stored,
        scored=scored if ctx.scored else None,
        expected_scored=expected_scored if ctx.scored else None,
    )
    if errors:
        ok, why = False, [*why, *errors]
    usage = mark1.since(mark0)
    gen_cpu = sum(r.cpu_s for r in results)
    step: dict[str, Any] = {
        "name": name,
        "mode": f"senml{senml}" if senml else "single",
        "offered_msgs_per_s": rate,
        "achieved_msgs_per_s": round(published / window, 1) if window else 0,
        "readings_per_s": round(expected_rows / window, 1) if window else 0,
        "window_s": round(window, 2),
        "messages": published,
        "acked": acked,
        "acked_in_window": sum(r.acked_in_window for r in results),
        "publish_errors": sum(r.publish_errors for r in results),
        "readings": readings,
        "stored": stored,
        "scored": scored,
        "expected_scored": expected_scored,
        "complete_after_window_s": round(complete_at - window_end, 2) if complete_at else None,
        "sustained": ok,
        "why_not": why,
        "storage_lag_records": {
            "max": max(lags) if lags else None,
            "last": lags[-1] if lags else None,
            "samples": len(lags),
        },
        "puback_ms_worst_worker": _worst([r.puback_ms for r in results]),
        "usage": usage,
        "memory_peak_mb": ctx.watch.peaks(),
        "generator_cpu_s": round(gen_cpu, 2),
    }
    if settled is not None:
        step["settled"] = settled
    if pollers:
        step["latency"] = latency_report(ctx, results, pollers)
    if profilers:
        step["profiles"] = finish_profilers(profilers)
    state = "sustained" if ok else f"NOT sustained ({'; '.join(why)})"
    log(
        f"{name}: {step['achieved_msgs_per_s']} msg/s offered, {stored}/{expected_rows} stored, "
        f"{scored}/{expected_scored} scored, complete +{step['complete_after_window_s']} s: {state}"
    )
    ctx.phases.append(step)
    if not ok:
        await wait_drained(ctx, lo, hi, expected_rows, expected_scored)
    return step


def _worst(items: list[dict[str, float | None]]) -> dict[str, float | None]:
    keys = {k for d in items for k in d}
    return {
        k: max((v for d in items if (v := d.get(k)) is not None), default=None)
        for k in sorted(keys)
    }


async def wait_drained(
    ctx: Ctx, lo: datetime, hi: datetime, expected_rows: int, expected_scored: int
) -> None:
    """After a failed step: let the backlog drain before the next step, so steps don't stack."""
    log("waiting for the backlog to drain")
    deadline = time.time() + ctx.args.drain_timeout
    async with await psycopg.AsyncConnection.connect(ctx.env.database_url, autocommit=True) as db:
        while time.time() < deadline:
            stored = await count_rows(db, "readings", ctx.ids(), lo, hi)
            scored = 0
            for domain, table in ctx.scored.items():
                scored += await count_rows(db, table, ctx.ids(domain), lo, hi)
            if stored >= expected_rows and scored >= expected_scored:
                log("drained")
                return
            await asyncio.sleep(2)
    raise RuntimeError(f"backlog not drained after {ctx.args.drain_timeout} s: stopping")


def latency_report(
    ctx: Ctx, results: list[PhaseResult], pollers: list[ArrivalPoller]
) -> dict[str, Any]:
    published = {
        (ctx.devices[i].id, ctx.ts(seq)): wall for r in results for i, seq, wall in r.samples
    }
    out: dict[str, Any] = {"sampled_messages": len(published)}
    for p in pollers:
        ids = set(p.ids)
        key = "publish_to_stored" if p.table == "readings" else f"publish_to_scored_{p.table}"
        out[key] = {
            **_series(
                [(wall, 1000 * (p.seen[k] - wall)) for k, wall in published.items() if k in p.seen]
            ),
            "of": sum(1 for k in published if k[0] in ids),
            "resolution_ms": p.resolution_ms(),
        }
        if p.table == "readings":
            out["publish_to_gateway_receipt"] = _series(
                [
                    (wall, 1000 * (p.received[k].timestamp() - wall))
                    for k, wall in published.items()
                    if k in p.received
                ]
            )
    return out


def _series(timed: list[tuple[float, float]]) -> dict[str, Any]:
    """Percentiles of (publish time, latency ms) samples: over the phase, in its first seconds
    and after them, and per second."""
    lat = [ms for _, ms in timed]
    return {
        **{
            f"{q}_ms": (round(v, 1) if v is not None else None) for q, v in percentiles(lat).items()
        },
        "max_ms": round(max(lat), 1) if lat else None,
        "n": len(lat),
        "first_seconds": FIRST_SECONDS_S,
        **before_after(timed, FIRST_SECONDS_S),
        "over_time": over_time(timed, LATENCY_SLICE_S),
    }


# ---- profiling ----------------------------------------------------------------------------------


def start_profilers(ctx: Ctx, duration: float) -> dict[str, tuple[subprocess.Popen[bytes], Path]]:
    spy = str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        spy = shutil.which("py-spy") or spy
    if not Path(spy).exists():
        log("py-spy not installed: no profiles")
        return {}
    out: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    pids = ctx.env.stack_pids()
    for name in ctx.args.profile_services:
        if not pids.get(name):
            continue
        raw = Path(tempfile.mkstemp(prefix=f"bench-e2e-{name}-", suffix=".txt")[1])
        # Non-blocking sampling at 50 Hz: the services are not paused, so profiling costs them
        # (almost) nothing; the profile runs while the window runs.
        proc = subprocess.Popen(  # noqa: S603 - fixed arguments, our own pids
            [
                spy,
                "record",
                "--nonblocking",
                "-r",
                "50",
                "-d",
                str(int(duration)),
                "-f",
                "raw",
                "-o",
                str(raw),
                "-p",
                str(pids[name][0]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        out[name] = (proc, raw)
    return out


def finish_profilers(profilers: dict[str, tuple[subprocess.Popen[bytes], Path]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (proc, raw) in profilers.items():
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0 or not raw.exists() or raw.stat().st_size == 0:
            out[name] = {"error": err.decode(errors="replace")[-500:]}
            raw.unlink(missing_ok=True)
            continue
        summary, top = summarise_profile(raw.read_text(), service=name)
        path = RESULTS / f"e2e_profile_{name}.txt"
        path.write_text(summary)
        raw.unlink(missing_ok=True)
        out[name] = {"file": str(path.relative_to(RESULTS.parent.parent)), "top_self": top[:5]}
    return out


def summarise_profile(collapsed: str, *, service: str, top: int = 25) -> tuple[str, list[str]]:
    """Top functions by own time and by inclusive time, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        # The first frame is the thread ("process 123:..." / "thread (0x..)"); keep functions.
        funcs = [f for f in frames if "(" in f and not f.startswith(("process ", "thread "))]
        if not funcs:
            continue
        total += n
        own[funcs[-1]] = own.get(funcs[-1], 0) + n
        for f in set(funcs):
            incl[f] = incl.get(f, 0) + n
    lines = [f"py-spy profile of {service} (non-blocking, 50 Hz), {total} samples", ""]
    for title, data in (("own time", own), ("inclusive time", incl)):
        lines.append(f"top {top} functions by {title}:")
        for f, n in sorted(data.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"  {100 * n / max(total, 1):5.1f}%  {f}")
        lines.append("")
    ranked = [
        f"{100 * n / max(total, 1):.1f}% {f}" for f, n in sorted(own.items(), key=lambda kv: -kv[1])
    ]
    return "\n".join(lines), ranked


# ---- baselines ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_broker() -> Iterator[tuple[int, str, str, subprocess.Popen[bytes]]]:
    """A Mosquitto of its own, configured like the stack's, with a bench client allowed `bench/#`.

    Its own broker, not the stack's: the gateway subscribes to every device topic of the stack's
    broker, and other clients use it, so neither would measure Mosquitto alone.
    """
    from shared.mqtt_admin import DynSecClient

    # The stack's broker: the same build, configuration and settings.
    install = find_install(StackSettings())
    data = Path(tempfile.mkdtemp(prefix="townpulse-bench-mqtt-"))
    pw = pwd.getpwnam("mosquitto")
    os.chown(data, pw.pw_uid, pw.pw_gid)
    admin_pw, user_pw = uuid.uuid4().hex, uuid.uuid4().hex
    dynsec = data / "dynamic-security.json"
    subprocess.run(  # noqa: S603 - fixed arguments
        [str(install.ctrl), "dynsec", "init", str(dynsec), "admin", admin_pw],
        check=True,
        capture_output=True,
    )
    os.chown(dynsec, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    # The template has a TLS listener too: give it a throwaway CA (the bench uses plain MQTT).
    tls_files = tls.ensure_server_cert(
        ca_cert_path=data / "ca.crt", ca_key_path=data / "ca.key", out_dir=data, hosts=["127.0.0.1"]
    )
    for path in (tls_files.server_cert, tls_files.server_key):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    conf = data / "mosquitto.conf"
    # The stack's configuration and settings (autosave policy included), on ports of its own.
    settings = StackSettings(
        mqtt_port=port, mqtt_plain_bind="127.0.0.1", mqtts_port=_free_port(), mqtt_bind="127.0.0.1"
    )
    conf.write_text(
        render_config(
            settings,
            cafile=tls_files.ca_cert,
            certfile=tls_files.server_cert,
            keyfile=tls_files.server_key,
            dynsec_plugin=install.dynsec_plugin,
            data_dir=data,
        )
    )
    mosquitto = str(install.broker)
    logf = open(data / "mosquitto.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=logf, stderr=logf)  # noqa: S603
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                tail = (data / "mosquitto.log").read_text()[-500:]
                raise RuntimeError(f"private mosquitto did not start: {tail}")
            time.sleep(0.1)
        admin = DynSecClient(host="127.0.0.1", port=port, username="admin", password=admin_pw)
        admin.connect()
        try:
            acls = [
                {"acltype": t, "topic": "bench/#", "priority": 0, "allow": True}
                for t in ("publishClientSend", "publishClientReceive", "subscribePattern")
            ]
            admin.check(
                [
                    {"command": "createRole", "rolename": "bench", "acls": acls},
                    {
                        "command": "createClient",
                        "username": "bench",
                        "password": user_pw,
                        "roles": [{"rolename": "bench"}],
                    },
                ]
            )
        finally:
            admin.close()
        yield port, "bench", user_pw, proc
    finally:
        proc.terminate()  # ours, by handle
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()
        shutil.rmtree(data, ignore_errors=True)


async def mosquitto_baseline(
    args: argparse.Namespace, watch_extra: dict[str, list[int]]
) -> dict[str, Any]:
    """Mosquitto alone: publishers (QoS 1, closed loop) -> one persistent subscriber."""
    ctx = mp.get_context("spawn")
    with private_broker() as (port, user, password, broker):
        spec = MqttBaseline(
            host="127.0.0.1",
            port=port,
            username=user,
            password=password,
            topic_prefix="bench/mqtt",
            connections=args.baseline_connections // args.workers,
            duration_s=args.baseline_duration,
        )
        sub_parent, sub_child = ctx.Pipe()
        sub = ctx.Process(
            target=mqtt_subscriber_main, args=(sub_child, spec), name="bench-e2e-mqsub"
        )
        sub.start()
        procs: list[BaseProcess] = [sub]
        try:
            assert await asyncio.to_thread(_recv, sub_parent, 30) == "ready"
            pubs = []
            for w in range(args.workers):
                parent, child = ctx.Pipe()
                p = ctx.Process(
                    target=mqtt_publisher_main, args=(child, spec, w), name=f"bench-e2e-mqpub-{w}"
                )
                p.start()
                procs.append(p)
                pubs.append(parent)
            for c in pubs:
                assert await asyncio.to_thread(_recv, c, 60) == "ready"
            watch = ProcessWatch(
                {"mosquitto_private": [broker.pid], "clients": [p.pid for p in procs if p.pid]}
            )
            mark0 = Mark.now(watch)
            for c in pubs:
                c.send("go")
            pub_results = [
                await asyncio.to_thread(_recv, c, args.baseline_duration + 60) for c in pubs
            ]
            sub_parent.send("stop")
            sub_result = await asyncio.to_thread(_recv, sub_parent, 120)
            usage = Mark.now(watch).since(mark0)
        finally:
            _join_or_terminate(procs)
    times = sub_result["times"]
    steady = (len(times) - 1) * 100 / (times[-1] - times[0]) if len(times) > 1 else 0.0
    published = sum(r["published"] for r in pub_results)
    result = {
        "msgs_per_s": round(steady, 1),
        "published": published,
        "acked": sum(r["acked"] for r in pub_results),
        "received": sub_result["received"],
        "publisher_connections": spec.connections * args.workers,
        "duration_s": args.baseline_duration,
        "publisher_cpu_s": round(sum(r["cpu_s"] for r in pub_results), 2),
        "subscriber_cpu_s": round(sub_result["cpu_s"], 2),
        "usage": usage,
        "how": (
            "private mosquitto (same version, the stack's mosquitto.conf template, dynamic "
            "security), paho on asyncio like the generator; publishers keep 20 QoS 1 messages "
            "in flight per connection; rate = messages received by one persistent-session "
            "QoS 1 subscriber per second while the publishers ran"
        ),
    }
    log(
        f"mosquitto alone: {result['msgs_per_s']} msg/s ({result['received']}/{published} received)"
    )
    return result


async def kafka_baseline(args: argparse.Namespace, env: Env, run: str) -> dict[str, Any]:
    """Kafka alone: one aiokafka producer (the gateway's settings) -> one consumer."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.schemas import Reading, ReadingBatch
    from shared.topics import READINGS_PARTITIONS, Domain

    topic = f"bench.e2e.{run}"
    now = datetime.now(UTC)
    value = ReadingBatch(
        device_id="bench-000000-00000",
        domain=Domain.WASTE,
        received_at=now,
        readings=[Reading(ts=now, metric="fill_pct", value=63.5)],
    ).to_bytes()
    admin = AIOKafkaAdminClient(bootstrap_servers=env.kafka, client_id=f"bench-admin-{run}")
    await admin.start()
    ctx = mp.get_context("spawn")
    procs: list[BaseProcess] = []
    try:
        await admin.create_topics([NewTopic(topic, READINGS_PARTITIONS, 1)])
        spec = KafkaBaseline(
            bootstrap=env.kafka,
            topic=topic,
            duration_s=args.baseline_duration,
            value=value,
            partitions=READINGS_PARTITIONS,
        )
        cp, cc = ctx.Pipe()
        pp, pc = ctx.Pipe()
        consumer = ctx.Process(target=kafka_consumer_main, args=(cc, spec), name="bench-e2e-kcons")
        producer = ctx.Process(target=kafka_producer_main, args=(pc, spec), name="bench-e2e-kprod")
        procs = [consumer, producer]
        for p in procs:
            p.start()
        assert await asyncio.to_thread(_recv, cp, 60) == "ready"
        assert await asyncio.to_thread(_recv, pp, 60) == "ready"
        pids = env.stack_pids()
        watch = ProcessWatch(
            {"kafka": pids.get("kafka", []), "clients": [p.pid for p in procs if p.pid]}
        )
        mark0 = Mark.now(watch)
        started = time.time()
        pp.send("go")
        prod = await asyncio.to_thread(_recv, pp, args.baseline_duration + 120)
        cp.send(prod["produced"])
        cons = await asyncio.to_thread(_recv, cp, 300)
        usage = Mark.now(watch).since(mark0)
        span = cons["last_at"] - started
    finally:
        _join_or_terminate(procs)
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
        await admin.close()
    result = {
        "msgs_per_s": round(cons["consumed"] / span, 1) if span > 0 else None,
        "producer_acked_msgs_per_s": round(prod["produced"] / prod["window_s"], 1),
        "produced": prod["produced"],
        "consumed": cons["consumed"],
        "record_bytes": len(value),
        "producer_cpu_s": round(prod["cpu_s"], 2),
        "consumer_cpu_s": round(cons["cpu_s"], 2),
        "usage": usage,
        "how": (
            f"temporary topic ({READINGS_PARTITIONS} partitions, deleted afterwards), one "
            "ReadingBatch-sized record per message; producer with the gateway's settings "
            "(acks=all, idempotent, linger 5 ms) sending as fast as it can, one consumer "
            "(read_committed); rate = records consumed / (last consumed - first produced)"
        ),
    }
    log(f"kafka alone: {result['msgs_per_s']} msg/s ({cons['consumed']}/{prod['produced']})")
    return result


# ---- cleanup ------------------------------------------------------------------------------------


async def purge_rows(db_url: str, ids: Sequence[str]) -> dict[str, int]:
    """Delete the run's rows from every table keyed by device (the devices' rows stay, deleted)."""
    out: dict[str, int] = {}
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as db:
        rows = await (
            await db.execute(
                """
                SELECT c.relname FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'device_id'
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                  AND c.relname <> 'devices'
                """
            )
        ).fetchall()
        for (table,) in rows:
            cur = await db.execute(
                f'DELETE FROM "{table}" WHERE device_id = ANY(%s)',  # noqa: S608 - catalogue name
                (list(ids),),
            )
            if cur.rowcount:
                out[table] = cur.rowcount
    return out


# ---- main ----------------------------------------------------------------------------------------


def _rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--devices", type=int, default=2000)
    p.add_argument("--duration", type=float, default=60, help="confirmation window (s)")
    p.add_argument("--step-duration", type=float, default=15, help="each step of the search (s)")
    p.add_argument("--grace", type=float, default=10, help="after a window, to store and score (s)")
    p.add_argument("--drain-timeout", type=float, default=300)
    p.add_argument("--workers", type=int, default=2, help="generator processes")
    p.add_argument(
        "--rates",
        type=_rates,
        default=_rates("500,1000,2000,3000,4000,6000,8000,10000,12000"),
        help="single-reading ladder (msg/s)",
    )
    p.add_argument(
        "--senml-rates",
        type=_rates,
        default=_rates("20,50,100,200,400,600,800,1200"),
        help="SenML ladder (msg/s, each --senml readings)",
    )
    p.add_argument("--senml", type=int, default=50, help="readings per SenML message")
    p.add_argument("--refine", type=int, default=1, help="bisections after the first failure")
    p.add_argument("--latency-rate", type=float, default=1000)
    p.add_argument("--latency-duration", type=float, default=None, help="default: --duration")
    p.add_argument(
        "--curve-rates",
        type=_rates,
        default=_rates("100,500,2000,4000"),
        help="latency at these rates too (msg/s), and at the sustained one",
    )
    # Short: above the sustainable rate the backlog must still drain within --drain-timeout.
    p.add_argument("--curve-duration", type=float, default=20, help="each curve point (s)")
    p.add_argument("--sample-every", type=int, default=10, help="latency: every n-th device")
    p.add_argument("--poll-interval", type=float, default=0.05)
    p.add_argument(
        "--settle-cores",
        type=float,
        default=0.5,
        help="latency phases start once the machine is busy below this many cores ...",
    )
    p.add_argument("--settle-for", type=float, default=10, help="... for this long (s)")
    p.add_argument(
        "--settle-max", type=float, default=300, help="... or after this long (s); 0: at once"
    )
    p.add_argument("--baseline-duration", type=float, default=20)
    p.add_argument("--baseline-connections", type=int, default=100)
    p.add_argument("--profile-duration", type=float, default=20)
    p.add_argument("--profile-services", nargs="*", default=["gateway", "storage", "energy"])
    p.add_argument("--ts-step", type=int, default=60, help="seconds between a device's readings")
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["baselines", "single", "senml", "latency", "curve", "profile"],
    )
    p.add_argument("--keep-data", action="store_true", help="keep the run's rows in the database")
    # Removing 10,000 devices costs two rewrites of the broker's security file each (an hour):
    # for a stack of its own that is thrown away afterwards.
    p.add_argument(
        "--keep-devices", action="store_true", help="leave the devices registered (throwaway stack)"
    )
    p.add_argument("--output", default="e2e", help="result name under bench/results/")
    args = p.parse_args(argv)
    if args.latency_duration is None:
        args.latency_duration = args.duration
    return args


async def search(ctx: Ctx, *, label: str, ladder: list[float], senml: int = 0) -> dict[str, Any]:
    """Step up the ladder with short windows, then confirm the best for the full duration."""
    args = ctx.args
    steps = StepSearch(ladder, refine=args.refine)
    while (rate := steps.next()) is not None:
        step = await run_phase(
            ctx, name=f"{label}-step-{rate:g}", rate=rate, duration=args.step_duration, senml=senml
        )
        steps.record(rate, step["sustained"])
    # Down every rate a short step sustained until one holds for the full window: a short step
    # can absorb a backlog a minute cannot (SenML's 800 packs/s held 15 s, not 60; nor 600, 400).
    candidates = sorted((r for r, ok in steps.history if ok), reverse=True)
    confirmed: dict[str, Any] | None = None
    for rate in candidates:
        step = await run_phase(
            ctx, name=f"{label}-confirm-{rate:g}", rate=rate, duration=args.duration, senml=senml
        )
        if step["sustained"]:
            confirmed = step
            break
    at_limit = next(
        (
            p
            for p in reversed(ctx.phases)
            if p["name"].startswith(f"{label}-step") and not p["sustained"]
        ),
        None,
    )
    return {
        "search": steps.history,
        "confirmed": confirmed,
        "first_failed_step": at_limit["name"] if at_limit else None,
        "bound": _bound(at_limit or confirmed),
    }


def _curve_point(rate: float, phase: dict[str, Any]) -> dict[str, Any]:
    return {"rate": rate, "sustained": phase["sustained"], "latency": phase.get("latency")}


def _rate(registration: dict[str, Any] | None) -> float | None:
    if not registration or not registration.get("seconds"):
        return None
    return round(float(registration["devices"]) / float(registration["seconds"]), 1)


def _bound(step: dict[str, Any] | None) -> dict[str, object] | None:
    if not step:
        return None
    cores = dict(step["usage"]["cpu_cores"])
    return bottleneck(
        {k: v for k, v in cores.items() if v is not None},
        cores=os.cpu_count() or 1,
        machine_busy_cores=step["usage"]["machine_busy_cores"],
    )


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    env = Env.load()
    run = uuid.uuid4().hex[:6]
    meta = run_meta()
    stack_pids = env.stack_pids()
    missing = [
        n for n in ("gateway", "storage", "kafka", "mosquitto", "postgres") if n not in stack_pids
    ]
    if missing:
        raise SystemExit(f"stack not running ({', '.join(missing)} down): `make up` first")
    out: dict[str, Any] = {
        "meta": meta,
        "run": run,
        "settings": {k: v for k, v in vars(args).items() if k not in ("output",)},
    }
    api = httpx.AsyncClient(
        base_url=env.api_url, headers={"Authorization": f"Bearer {env.admin_key}"}, timeout=60
    )
    made: list[str] = []
    gens: Generators | None = None
    watch: ProcessWatch | None = None
    try:
        if "baselines" not in args.skip:
            out["mosquitto_only"] = await mosquitto_baseline(args, {})
            out["kafka_only"] = await kafka_baseline(args, env, run)
        log(f"registering {args.devices} devices (bench-{run}-*)")
        t = time.monotonic()
        devices, made = await register_devices(api, run, args.devices, DEFAULT_SHARES)
        out["registration"] = {"devices": len(devices), "seconds": round(time.monotonic() - t, 1)}
        # Timestamps: a device's n-th reading is at ts0 + n * step. They start 6.5 days back, so
        # they are neither too old (gateway limit: 7 days) nor in the future for ~9,000 readings
        # per device at one a minute, and each is unique, so nothing is deduplicated.
        ts0 = (int(time.time()) - int(6.5 * 86400)) // 60 * 60
        gens = Generators(env, devices, args.workers)
        conn = await gens.connected()
        out["connections"] = {
            "devices": sum(c["connected"] for c in conn),
            "seconds": round(max(c["seconds"] for c in conn), 1),
        }
        log(f"{out['connections']['devices']} devices connected")
        comps = {**stack_pids, LOAD_GENERATOR: gens.pids, BENCH_PARENT: [os.getpid()]}
        watch = ProcessWatch(comps)
        watch.start()
        # Registered and connected, not one reading yet: what the devices themselves cost is the
        # difference with the same processes once every device has sent readings.
        out["memory_before_readings_mb"] = _rounded(watch.memory_mb())
        async with await psycopg.AsyncConnection.connect(env.database_url, autocommit=True) as db:
            scored = await scored_tables(db)
        out["scored_tables"] = scored
        ctx = Ctx(
            env=env, args=args, devices=devices, gens=gens, watch=watch, scored=scored, ts0=ts0
        )
        if "single" not in args.skip:
            out["single"] = await search(ctx, label="single", ladder=args.rates)
        if "senml" not in args.skip:
            out["senml"] = await search(
                ctx, label="senml", ladder=args.senml_rates, senml=args.senml
            )
        if "latency" not in args.skip:
            out["latency_phase"] = await run_phase(
                ctx,
                name=f"latency-{args.latency_rate:g}",
                rate=args.latency_rate,
                duration=args.latency_duration,
                sample_every=args.sample_every,
            )
        best = (out.get("single") or {}).get("confirmed")
        if "curve" not in args.skip:
            curve_rates = set(args.curve_rates)
            if best:
                curve_rates.add(best["offered_msgs_per_s"])
            out["latency_curve"] = []
            for rate in sorted(curve_rates):
                phase = await run_phase(
                    ctx,
                    name=f"curve-{rate:g}",
                    rate=rate,
                    duration=args.curve_duration,
                    sample_every=args.sample_every,
                )
                out["latency_curve"].append(_curve_point(rate, phase))
            if "latency_phase" in out:
                out["latency_curve"].append(_curve_point(args.latency_rate, out["latency_phase"]))
            out["latency_curve"].sort(key=lambda c: c["rate"])
        if "profile" not in args.skip and best:
            out["profile_phase"] = await run_phase(
                ctx,
                name=f"profile-{best['offered_msgs_per_s']:g}",
                rate=best["offered_msgs_per_s"],
                duration=args.profile_duration,
                profile=True,
            )
        out["phases"] = ctx.phases
        out["memory_after_readings_mb"] = _rounded(watch.memory_mb())
        out["memory_peak_mb_overall"] = watch.peaks(overall=True)
        out["memory_lifetime_hwm_mb"] = watch.lifetime_hwm_mb()
    finally:
        if watch is not None:
            watch.stop()
        if gens is not None:
            gens.close()
        if made and args.keep_devices:
            log(f"{len(made)} devices left registered (--keep-devices)")
        elif made:
            log(f"removing {len(made)} devices")
            out["removed_devices"] = await remove_devices(api, made)
            if not args.keep_data:
                out["purged_rows"] = await purge_rows(env.database_url, made)
        await api.aclose()
    return out


def _rounded(mb: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in mb.items()}


def per_device_kb(out: dict[str, Any]) -> dict[str, float]:
    """What each device added to each Python service, in kB: resident set once every device has
    sent readings, less the same before the first one."""
    before = out.get("memory_before_readings_mb") or {}
    after = out.get("memory_after_readings_mb") or {}
    devices = (out.get("registration") or {}).get("devices")
    if not devices:
        return {}
    return {
        k: round((after[k] - before[k]) * 1024 / devices, 2)
        for k in PYTHON_SERVICES
        if k in before and k in after
    }


def summarise(out: dict[str, Any]) -> dict[str, Any]:
    """The headline keys of e2e.json (issue 6), next to the detail they come from."""
    single = (out.get("single") or {}).get("confirmed") or {}
    senml = (out.get("senml") or {}).get("confirmed") or {}
    lat = (out.get("latency_phase") or {}).get("latency") or {}
    stored = lat.get("publish_to_stored") or {}
    mem = out.get("memory_peak_mb_overall") or {}
    mq = (out.get("mosquitto_only") or {}).get("msgs_per_s")
    kf = (out.get("kafka_only") or {}).get("msgs_per_s")
    rate = single.get("offered_msgs_per_s")
    python_rss = sum(v for k, v in mem.items() if k in PYTHON_SERVICES)
    # The local stack's keepers (townpulse/keeper.py; compose restarts with `restart:`).
    keepers_rss = sum(v for k, v in mem.items() if k.endswith(".keeper"))
    return {
        "sustained_msgs_per_s": rate,
        "sustained_senml_msgs_per_s": senml.get("offered_msgs_per_s"),
        "sustained_senml_readings_per_s": senml.get("readings_per_s"),
        "mosquitto_only_msgs_per_s": mq,
        "kafka_only_msgs_per_s": kf,
        "sustained_fraction_of_mosquitto": round(rate / mq, 3) if rate and mq else None,
        "sustained_fraction_of_kafka": round(rate / kf, 3) if rate and kf else None,
        "p50_ms": stored.get("p50_ms"),
        "p95_ms": stored.get("p95_ms"),
        "p99_ms": stored.get("p99_ms"),
        "latency_resolution_ms": stored.get("resolution_ms"),
        "latency_settled": (out.get("latency_phase") or {}).get("settled"),
        "rss_mb": mem,
        "python_services_rss_mb_total": round(python_rss, 1),
        "keepers_rss_mb_total": round(keepers_rss, 1),
        "devices": out.get("settings", {}).get("devices"),
        "registration_devices_per_s": _rate(out.get("registration")),
        "python_services_rss_mb_after_readings": round(
            sum(
                v
                for k, v in (out.get("memory_after_readings_mb") or {}).items()
                if k in PYTHON_SERVICES
            ),
            1,
        ),
        "memory_per_device_kb": per_device_kb(out),
        "bound_by": (out.get("single") or {}).get("bound"),
        "targets": {
            "sustained_msgs_per_s_min": 6000,
            "p99_ms_max": 500,
            "scored_p99_ms_max": SCORED_P99_MS_MAX,
            "python_services_rss_mb_max_at_10000_devices": 1536,
        },
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
