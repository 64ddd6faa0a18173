"""What every benchmark result records: the machine, the commit, the date, where the data was.

Results are JSON files in `bench/results/`; `bench.report` turns them into BENCHMARKS.md, so every
figure there can be traced to a file, a command and a commit.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
# The shared data folder sits next to the repository; it is never copied into it.
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
DATA_DIR_ENV = "TOWNPULSE_BENCH_DATA"


def data_dir(override: str | Path | None = None) -> Path:
    """The data folder: an explicit argument, else $TOWNPULSE_BENCH_DATA, else ../shared/data."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR))


def _meminfo_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Cores, memory and CPU model of this machine (what the numbers were measured on)."""
    mem = _meminfo_bytes()
    cores = os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        # A container may see all the host's cores but be allowed only a few.
        cores = len(os.sched_getaffinity(0))
    return {
        "cores": cores,
        "memory_gb": round(mem / 2**30, 1) if mem else None,
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(  # noqa: S603 -- fixed argument list, no shell
            ["git", *args],  # noqa: S607 -- git from PATH, like a developer runs it
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_commit() -> dict[str, Any]:
    """The commit the code was at, and whether tracked code had uncommitted changes."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "shared", "bench")
    return {"sha": sha, "dirty": bool(status) if status is not None else None}


def file_commit(path: Path) -> dict[str, str] | None:
    """The last commit that changed `path` (its sha and ISO date), or None if git knows none."""
    out = _git("log", "-1", "--format=%H %cI", "--", str(path))
    if not out:
        return None
    sha, date = out.split(" ", 1)
    return {"sha": sha, "date": date}


def now_utc() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def command_line(module: str | None = None, argv: Sequence[str] | None = None) -> str:
    """The command that produced a result, as one would type it from the repository root."""
    if module is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec is not None else None
    head = f"python -m {module}" if module else f"python {sys.argv[0]}"
    return " ".join([head, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])


def run_meta(*, command: str | None = None, data: Path | None = None) -> dict[str, Any]:
    """The block every result file starts with."""
    return {
        "command": command or command_line(),
        "date": now_utc(),
        "machine": machine(),
        "commit": git_commit(),
        "data_dir": str(data) if data is not None else None,
    }


def write_result(name: str, payload: dict[str, Any], *, results_dir: Path = RESULTS) -> Path:
    """Write `bench/results/<name>.json` (sorted keys, so diffs between runs stay readable)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path
