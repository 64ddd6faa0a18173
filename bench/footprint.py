"""The whole stack at a small town's pace: memory per process and CPU, with the simulator running.

    python -m bench.footprint [--settle 120] [--window 300]

Needs the stack with its simulator (`make up`): the simulated town (215 devices) publishes at
its real rate. After `--settle` seconds, memory is sampled every second for `--window` seconds
(mean and peak per process: the resident set of a process, the sum of proportional set sizes
for a process tree such as PostgreSQL's backends) and the CPU each component used over the
window is reported in cores. The simulator is the town's devices, not the platform: it is
reported apart and left out of the totals.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.common import command_line, run_meta, write_result
from bench.e2e import CLK_TCK, PYTHON_SERVICES, Env, ProcessWatch, log
from townpulse.stack import read_env_file
from townpulse.stack.config import COMPACT_PROCESS

INFRA = ("kafka", "postgres", "mosquitto")
LOAD = ("simulator",)


def _gateway_messages(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^townpulse_gateway_messages_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    )


def _install(pid: int) -> dict[str, object]:
    """The interpreter a service runs on, and whether the development extras are installed there.

    They weigh on the figure: River imports scikit-learn (and through it pandas) when it is
    installed, and the development install has it for River's estimator checks; a town's
    install (`pip install .`, the Docker image) has not.
    """
    python = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    probe = "import importlib.util as u; print(u.find_spec('sklearn') is not None)"
    # The interpreter of our own service, a fixed probe, no shell.
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)  # noqa: S603
    return {"python": python, "dev_extras": out.stdout.strip() == "True"}


def measure(env: Env, *, settle_s: float, window_s: float) -> dict[str, object]:
    pids = env.stack_pids()
    if "simulator" not in pids:
        raise SystemExit("the simulator is not running: start the stack with `make up`")
    # The keepers (one small process per service, the local stack's `restart:`) count as one.
    components = {k: v for k, v in pids.items() if not k.endswith(".keeper")}
    components["keepers"] = [p for k, v in pids.items() if k.endswith(".keeper") for p in v]
    install = _install(pids["storage"][0])
    watch = ProcessWatch(components)
    api = httpx.Client(
        base_url=env.api_url, headers={"Authorization": f"Bearer {env.admin_key}"}, timeout=10
    )
    gateway_url = read_env_file(env.stack.stack_env_file)["GATEWAY_URL"]
    log(f"settling {settle_s:.0f} s")
    time.sleep(settle_s)
    ticks0, msgs0, t0 = watch.cpu_ticks(), _gateway_messages(gateway_url), time.monotonic()
    samples: dict[str, list[float]] = {}
    while time.monotonic() - t0 < window_s:
        for name, mb in watch.memory_mb().items():
            samples.setdefault(name, []).append(mb)
        time.sleep(1.0)
    elapsed = time.monotonic() - t0
    ticks1, msgs1 = watch.cpu_ticks(), _gateway_messages(gateway_url)
    # Counted at the end: the simulator registers its town while the stack settles.
    devices = api.get("/v1/devices", params={"limit": 1}).json()["total"]
    per_process = {
        name: {
            "rss_mb_mean": round(sum(v) / len(v), 1),
            "rss_mb_peak": round(max(v), 1),
            "cpu_cores": round((ticks1[name] - ticks0[name]) / CLK_TCK / elapsed, 4),
        }
        for name, v in sorted(samples.items())
    }
    platform = {k: v for k, v in per_process.items() if k not in LOAD}
    # The compact layout's shared process (TOWNPULSE_LAYOUT=compact) runs three of them.
    python = {k: v for k, v in platform.items() if k in (*PYTHON_SERVICES, COMPACT_PROCESS)}
    return {
        "benchmark": "footprint",
        "layout": "compact" if COMPACT_PROCESS in per_process else "separate",
        "install": install,
        "devices": devices,
        "settle_s": settle_s,
        "window_s": round(elapsed, 1),
        "messages_per_s": round((msgs1 - msgs0) / elapsed, 2),
        "processes": per_process,
        "platform_rss_mb_mean": round(sum(p["rss_mb_mean"] for p in platform.values()), 1),
        "platform_rss_mb_peak_sum": round(sum(p["rss_mb_peak"] for p in platform.values()), 1),
        "python_rss_mb_mean": round(sum(p["rss_mb_mean"] for p in python.values()), 1),
        "platform_cpu_cores": round(sum(p["cpu_cores"] for p in platform.values()), 3),
        "targets": {"platform_rss_mb_max": 1200},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.footprint", description=__doc__)
    parser.add_argument("--settle", type=float, default=120.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=300.0, help="seconds measured")
    parser.add_argument("--output", default="footprint", help="result name under bench/results/")
    args = parser.parse_args(argv)
    env = Env.load()
    result = measure(env, settle_s=args.settle, window_s=args.window)
    result["meta"] = run_meta(command=command_line("bench.footprint", argv))
    path = write_result(args.output, result)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
