"""The footprint sampler's reading of the machine, on made-up /proc, cgroup and powercap trees:
process trees, CPU with reaped children, memory with shared pages once, keepers, RAPL domains."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from townpulse.service.units import unit_name
from townpulse.watch.footprint import (
    KEEPERS,
    Clock,
    Proc,
    Sampler,
    cgroup_sample,
    descendants,
    keepers_sample,
    parse_stat,
    rapl_samples,
    read_processes,
    tree_sample,
)
from townpulse.watch.settings import WatchSettings

pytestmark = pytest.mark.unit

CLOCK = Clock(ticks=100, boot=1_800_000_000.0)


def _stat(
    pid: int, ppid: int, *, comm: str = "x", ticks: tuple[int, int, int, int], start: int
) -> str:
    utime, stime, cutime, cstime = ticks
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    # stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
    return (
        f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194304 10 0 0 0 {utime} {stime} {cutime}"
        f" {cstime} 20 0 1 0 {start} 1000000 100 18446744073709551615\n"
    )


def _fake_proc(
    root: Path,
    procs: dict[int, tuple[int, tuple[int, int, int, int], int, int]],
    *,
    comm: str = "x",
) -> Path:
    """procs: pid -> (ppid, (utime, stime, cutime, cstime), RssAnon kB, RssShmem kB)."""
    for pid, (ppid, ticks, anon, shmem) in procs.items():
        d = root / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(_stat(pid, ppid, comm=comm, ticks=ticks, start=500 + pid))
        (d / "status").write_text(
            f"Name:\t{comm}\nVmRSS:\t{anon + shmem + 10} kB\nRssAnon:\t{anon} kB\n"
            f"RssFile:\t10 kB\nRssShmem:\t{shmem} kB\n"
        )
    (root / "self").mkdir(exist_ok=True)
    (root / "stat").write_text("cpu  1 2 3\nbtime 1800000000\nprocesses 9\n")
    return root


def test_the_command_name_may_hold_anything() -> None:
    text = _stat(7, 1, comm="postgres: a) (b", ticks=(10, 20, 30, 40), start=99)
    assert parse_stat(text) == (1, 30, 70, 99)


def test_a_tree_counts_its_descendants_and_their_reaped_children(tmp_path: Path) -> None:
    proc = _fake_proc(
        tmp_path,
        {
            100: (1, (50, 10, 300, 100), 1000, 8000),  # the postmaster, with reaped backends
            101: (100, (5, 5, 0, 0), 200, 6000),  # a backend
            102: (101, (1, 1, 0, 0), 100, 0),  # a backend's own child
            200: (1, (999, 999, 0, 0), 5000, 0),  # someone else's process
        },
    )
    procs = read_processes(proc)
    assert {p.pid for p in descendants(100, procs)} == {100, 101, 102}
    sample = tree_sample("postgres", 100, procs, CLOCK)
    assert sample is not None
    assert sample.cpu_s == pytest.approx((50 + 10 + 300 + 100 + 5 + 5 + 1 + 1) / 100)
    # Private pages of each, the largest shared set once: 1000 + 200 + 100 kB + (8000 + 10) kB.
    assert sample.rss_bytes == (1000 + 200 + 100 + 8010) * 1024
    assert sample.processes == 3
    assert sample.started_at == datetime.fromtimestamp(1_800_000_000 + 600 / 100, UTC)
    assert tree_sample("gone", 4242, procs, CLOCK) is None


def test_keepers_count_only_their_own_time() -> None:
    procs = {
        10: Proc(
            10, 1, own_ticks=30, children_ticks=5000, start_ticks=100, rss_private=1, rss_shared=2
        ),
        11: Proc(
            11, 1, own_ticks=20, children_ticks=0, start_ticks=200, rss_private=3, rss_shared=4
        ),
    }
    sample = keepers_sample([10, 11, 12], procs, CLOCK)
    assert sample is not None and sample.component == KEEPERS
    assert sample.cpu_s == pytest.approx(0.5)
    assert (sample.rss_bytes, sample.processes) == (1 + 3 + 4, 2)
    assert sample.started_at == CLOCK.started(100)
    assert keepers_sample([12], procs, CLOCK) is None


def test_a_systemd_units_cgroup(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    (tmp_path / "memory.current").write_text("123456\n")
    (tmp_path / "cgroup.procs").write_text("10\n11\n")
    sample = cgroup_sample("kafka", tmp_path)
    assert sample is not None
    assert (sample.cpu_s, sample.rss_bytes, sample.processes, sample.source) == (
        2.5,
        123456,
        2,
        "cgroup",
    )
    assert cgroup_sample("kafka", tmp_path / "missing") is None


def _zone(root: Path, name: str, label: str, energy: str | None, wrap: int = 262143328850) -> None:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    if energy is not None:
        (d / "energy_uj").write_text(energy + "\n")
    (d / "max_energy_range_uj").write_text(f"{wrap}\n")


def test_rapl_packages_and_dram_not_their_parts(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", "package-0", "1000")
    _zone(tmp_path, "intel-rapl:0:0", "core", "400")
    _zone(tmp_path, "intel-rapl:0:1", "uncore", "100")
    _zone(tmp_path, "intel-rapl:0:2", "dram", "300")
    _zone(tmp_path, "intel-rapl:1", "package-1", None)  # unreadable: skipped
    got = {s.component: (s.energy_uj, s.energy_range_uj) for s in rapl_samples(tmp_path)}
    assert got == {"rapl:package-0": (1000, 262143328850), "rapl:dram-0": (300, 262143328850)}


def test_rapl_psys_alone_when_there_is_one(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", "package-0", "1000")
    _zone(tmp_path, "intel-rapl:1", "psys", "5000")
    assert [s.component for s in rapl_samples(tmp_path)] == ["rapl:psys"]


def test_no_rapl_no_samples(tmp_path: Path) -> None:
    assert rapl_samples(tmp_path / "none") == []


def test_under_systemd_every_unit_is_read_from_its_cgroup(tmp_path: Path) -> None:
    settings = WatchSettings(run_dir=tmp_path / "run", watch_supervisor="systemd")
    sampler = Sampler(settings, cgroup=tmp_path / "cg", powercap=tmp_path / "none")
    for i, name in enumerate(sampler.components()):
        unit = tmp_path / "cg" / "system.slice" / unit_name(name)
        unit.mkdir(parents=True)
        (unit / "cpu.stat").write_text(f"usage_usec {i * 1_000_000}\n")
        (unit / "memory.current").write_text(f"{i * 1000}\n")
        (unit / "cgroup.procs").write_text("1\n")
    got = {s.component: s.cpu_s for s in sampler.sample()}
    assert got == {name: float(i) for i, name in enumerate(sampler.components())}
    assert {"postgres", "kafka", "mosquitto", "api", "watch"} <= set(got)
