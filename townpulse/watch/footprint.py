"""The platform's own footprint, sampled: CPU time and memory of each component, and the
machine's RAPL energy counters where it exposes them (docs/report.md).

The local stack: each component's processes are found from its pid file (townpulse/stack) and
/proc: the main process and all its descendants (PostgreSQL's backends, a service's workers).
Its CPU time is the sum of their user and system time, plus what their reaped children used
(/proc/<pid>/stat's cutime and cstime): a backend that exits is reaped by the postmaster, so
its time stays counted. Under systemd: each unit's cgroup (cpu.stat, memory.current).

Counters, not rates: shared/footprint.py subtracts consecutive samples, so the CPU figure is
exact however seldom the samples are taken; the interval only limits how finely memory is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

from townpulse.stack import Stack, StackSettings
from townpulse.stack.config import INFRA
from townpulse.stack.services import keeper
from townpulse.watch.settings import WatchSettings

log = logging.getLogger("townpulse.watch.footprint")

PROC = Path("/proc")
POWERCAP = Path("/sys/class/powercap")
CGROUP = Path("/sys/fs/cgroup")
# The keepers (townpulse/keeper.py) of every component, as one: each is a small loop.
KEEPERS = "keepers"
WATCH = "watch"


@dataclass(frozen=True)
class Sample:
    """One row of `platform_footprint` (shared/migrations/versions/0010_footprint.py)."""

    component: str
    source: str
    cpu_s: float | None = None
    rss_bytes: int | None = None
    processes: int | None = None
    started_at: datetime | None = None
    energy_uj: int | None = None
    energy_range_uj: int | None = None


@dataclass(frozen=True)
class Proc:
    """What /proc says of one process (times in clock ticks, memory in bytes)."""

    pid: int
    ppid: int
    own_ticks: int
    children_ticks: int
    start_ticks: int
    rss_private: int
    rss_shared: int


def parse_stat(text: str) -> tuple[int, int, int, int]:
    """(ppid, utime + stime, cutime + cstime, starttime) from /proc/<pid>/stat.

    The command name may hold spaces and parentheses: fields are counted after its last ')'.

    >>> parse_stat("42 (a (b) c) S 7 42 42 0 -1 0 0 0 0 0 150 50 30 20 20 0 1 0 9000 0 0")
    (7, 200, 50, 9000)
    """
    rest = text[text.rindex(")") + 2 :].split()
    # proc(5): state ppid ... utime(14) stime(15) cutime(16) cstime(17) ... starttime(22)
    ppid, utime, stime, cutime, cstime, start = (int(rest[i]) for i in (1, 11, 12, 13, 14, 19))
    return ppid, utime + stime, cutime + cstime, start


def parse_status_memory(text: str) -> tuple[int, int]:
    """(private, shared) resident bytes from /proc/<pid>/status: RssAnon, and RssFile + RssShmem
    (pages other processes may map too: PostgreSQL's shared buffers, the libraries).

    >>> parse_status_memory("RssAnon:  100 kB\\nRssFile:  20 kB\\nRssShmem:  3 kB\\n")
    (102400, 23552)
    """
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0]) * 1024
    return fields.get("RssAnon", 0), fields.get("RssFile", 0) + fields.get("RssShmem", 0)


def read_processes(proc: Path = PROC) -> dict[int, Proc]:
    """Every process of the machine that can be read (one gone meanwhile is skipped)."""
    out: dict[int, Proc] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, own, children, start = parse_stat((entry / "stat").read_text())
            private, shared = parse_status_memory((entry / "status").read_text())
        except (OSError, ValueError, IndexError):
            continue
        pid = int(entry.name)
        out[pid] = Proc(pid, ppid, own, children, start, private, shared)
    return out


def descendants(root: int, procs: dict[int, Proc]) -> list[Proc]:
    """The root process and all its descendants, root first."""
    if root not in procs:
        return []
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(procs[pid])
        todo.extend(children.get(pid, ()))
    return out


@dataclass(frozen=True)
class Clock:
    """How /proc's ticks become seconds and dates: ticks per second, the boot's time."""

    ticks: int
    boot: float

    @classmethod
    def read(cls, proc: Path = PROC) -> Clock:
        boot = next(
            int(line.split()[1])
            for line in (proc / "stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return cls(os.sysconf("SC_CLK_TCK"), float(boot))

    def started(self, start_ticks: int) -> datetime:
        return datetime.fromtimestamp(self.boot + start_ticks / self.ticks, UTC)


def tree_sample(name: str, root: int, procs: dict[int, Proc], clock: Clock) -> Sample | None:
    """A component from its main process: CPU of the whole tree (reaped children included),
    memory as the private pages of each process plus the largest shared set among them (the
    pages they share are counted once, as far as /proc can tell)."""
    tree = descendants(root, procs)
    if not tree:
        return None
    ticks = sum(p.own_ticks + p.children_ticks for p in tree)
    rss = sum(p.rss_private for p in tree) + max(p.rss_shared for p in tree)
    return Sample(
        component=name,
        source="proc",
        cpu_s=ticks / clock.ticks,
        rss_bytes=rss,
        processes=len(tree),
        started_at=clock.started(tree[0].start_ticks),
    )


def keepers_sample(pids: Iterable[int], procs: dict[int, Proc], clock: Clock) -> Sample | None:
    """The keepers, as one component: their own time only (what their reaped children used is
    their components', counted there until they died)."""
    found = [procs[p] for p in pids if p in procs]
    if not found:
        return None
    return Sample(
        component=KEEPERS,
        source="proc",
        cpu_s=sum(p.own_ticks for p in found) / clock.ticks,
        # The same Python libraries in each: counted once, as in a tree.
        rss_bytes=sum(p.rss_private for p in found) + max(p.rss_shared for p in found),
        processes=len(found),
        # The oldest keeper: a keeper that restarts (with the stack) starts a new counter.
        started_at=clock.started(min(p.start_ticks for p in found)),
    )


def cgroup_sample(name: str, path: Path) -> Sample | None:
    """A systemd unit's cgroup (v2): CPU from cpu.stat, memory from memory.current; the
    cgroup's creation (the unit's start) marks its counter."""
    try:
        usage = next(
            int(line.split()[1])
            for line in (path / "cpu.stat").read_text().splitlines()
            if line.startswith("usage_usec ")
        )
        memory = int((path / "memory.current").read_text())
        procs = len((path / "cgroup.procs").read_text().split())
        created = datetime.fromtimestamp(path.stat().st_ctime, UTC)
    except (OSError, ValueError, StopIteration):
        return None
    return Sample(
        component=name,
        source="cgroup",
        cpu_s=usage / 1e6,
        rss_bytes=memory,
        processes=procs,
        started_at=created,
    )


def rapl_samples(powercap: Path = POWERCAP) -> list[Sample]:
    """The RAPL counters worth adding up: the platform domain (psys) alone when there is one
    (it covers the rest), else each package and each DRAM domain (core and uncore are parts
    of their package). Unreadable counters (root only since Linux 5.10) give nothing."""
    zones: list[tuple[str, Path]] = []
    for path in sorted(powercap.glob("intel-rapl:*")):
        try:
            zones.append(((path / "name").read_text().strip(), path))
        except OSError:
            continue
    psys = [z for z in zones if z[0] == "psys"]
    chosen = psys or [z for z in zones if z[0].startswith("package") or z[0] == "dram"]
    out = []
    for name, path in chosen:
        # dram has no socket number in its name: the zone's (intel-rapl:0:2 -> dram-0).
        label = f"dram-{path.name.split(':')[1]}" if name == "dram" else name
        try:
            energy = int((path / "energy_uj").read_text())
            wrap = int((path / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            continue
        out.append(
            Sample(component=f"rapl:{label}", source="rapl", energy_uj=energy, energy_range_uj=wrap)
        )
    return out


class Sampler:
    """Finds the stack's components and samples them (the watch's settings say how)."""

    def __init__(
        self,
        settings: WatchSettings,
        *,
        proc: Path = PROC,
        powercap: Path = POWERCAP,
        cgroup: Path = CGROUP,
    ) -> None:
        self.s = settings
        self.stack = Stack(StackSettings(run_dir=settings.run_dir))
        self.proc, self.powercap, self.cgroup = proc, powercap, cgroup

    def components(self) -> list[str]:
        return [*INFRA, *self.stack.services.processes(), WATCH]

    def sample(self) -> list[Sample]:
        found: list[Sample | None]
        if self.s.watch_supervisor == "systemd":
            found = [self._unit(name) for name in self.components()]
        else:
            procs = read_processes(self.proc)
            clock = Clock.read(self.proc)
            found = []
            keepers = []
            for name in self.components():
                pid = self.stack.procs.pid(name)
                found.append(tree_sample(name, pid, procs, clock) if pid else None)
                kept = self.stack.procs.pid(keeper(name))
                keepers += [kept] if kept else []
            found.append(keepers_sample(keepers, procs, clock))
        return [s for s in found if s is not None] + rapl_samples(self.powercap)

    def _unit(self, name: str) -> Sample | None:
        from townpulse.service.units import unit_name

        return cgroup_sample(name, self.cgroup / "system.slice" / unit_name(name))


INSERT = """
INSERT INTO platform_footprint (ts, component, source, cpu_s, rss_bytes, processes,
    started_at, energy_uj, energy_range_uj)
VALUES (%(ts)s, %(component)s, %(source)s, %(cpu_s)s, %(rss_bytes)s, %(processes)s,
    %(started_at)s, %(energy_uj)s, %(energy_range_uj)s)
ON CONFLICT DO NOTHING
"""


async def store(conn: AsyncConnection[Any], ts: datetime, samples: Sequence[Sample]) -> None:
    """One round of samples, all at `ts`, in one transaction."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            INSERT,
            [
                {
                    "ts": ts,
                    "component": s.component,
                    "source": s.source,
                    "cpu_s": s.cpu_s,
                    "rss_bytes": s.rss_bytes,
                    "processes": s.processes,
                    "started_at": s.started_at,
                    "energy_uj": s.energy_uj,
                    "energy_range_uj": s.energy_range_uj,
                }
                for s in samples
            ],
        )


async def sample_once(sampler: Sampler, conn: AsyncConnection[Any]) -> list[Sample]:
    """Sample every component now and store the round; the samples."""
    ts = datetime.now(UTC)
    samples = await asyncio.to_thread(sampler.sample)
    await store(conn, ts, samples)
    return samples


async def run(settings: WatchSettings, stopping: asyncio.Event) -> None:
    """Sample every `footprint_interval_s` until `stopping`; a database that is down costs
    the samples of that time, never the watch (its other checks go on)."""
    if settings.database_url is None:
        log.info("no TOWNPULSE_DATABASE_URL: the platform's footprint is not sampled")
        return
    sampler = Sampler(settings)
    url = settings.database_url.get_secret_value()
    conn: AsyncConnection[Any] | None = None
    while not stopping.is_set():
        try:
            if conn is None or conn.closed:
                conn = await AsyncConnection.connect(url, autocommit=True)
            await sample_once(sampler, conn)
        except Exception as exc:  # see the docstring: logged, tried again next time
            log.warning("footprint sample not stored: %s", exc)
            if conn is not None:
                await conn.close()
            conn = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=settings.footprint_interval_s)
    if conn is not None:
        await conn.close()
