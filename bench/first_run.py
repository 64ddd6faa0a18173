"""From `townpulse up` on an empty run directory to a living town: how long until each console
page has its data, and until the backfill's history is published, stored and learnt.

    TOWNPULSE_RUN_DIR=/tmp/tp-first-run .venv/bin/python -m bench.first_run

The run directory must be new (nothing started there before) and the stack's ports free. Times
are measured from the start of `townpulse up` (which includes starting PostgreSQL, Kafka,
Mosquitto and the services) to the first moment each check holds, polled every 2 s. The stages
of the backfill: the simulator has published it (`backfill_published`), the storage service has
stored it (`energy_history_14_days`, `energy_history_caught_up`), the domain services have
learnt it (`models_calibrated`). Once every check holds (or at the time limit), the CPU time
each process of the stack used since it started says where the backfill's work went. The stack
is left running; `townpulse down` stops it.

A run that reached its time limit (a busy machine) can be finished: `--continue-pending` polls
the checks it left pending on the stack it started, timed from its start, and rewrites the
result (`"continued": true`).

`--catch-up-steps 1` runs the simulator as before it sent its backlog in blocks (one message per
reading, one round trip per step): the same town, for a before/after pair.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS, run_meta, write_result
from townpulse.simulator.cli import LIVING_TOWN_ARGS
from townpulse.simulator.events import STEP
from townpulse.simulator.runner import read_progress
from townpulse.stack import Stack, read_env_file

POLL_S = 2.0
# One device of each kind the simulated town has from its first step (ids of build_town).
SAMPLE_DEVICES = ("meter-001", "bin-001", "counter-001")
# The simulator's backlog is published once its last published step is this close to now.
PUBLISHED_WITHIN = 2 * STEP
# Clock ticks per second of /proc/<pid>/stat's CPU times (USER_HZ: 100 on Linux).
TICKS = os.sysconf("SC_CLK_TCK")


def checks(api: httpx.Client, *, progress: Path) -> dict[str, Callable[[], bool]]:
    """What a first-time user sees on each page, as API answers."""

    def ok(path: str, **params: Any) -> Any:
        r = api.get(path, params=params)
        return r.json() if r.status_code == 200 else None

    def plan_has_route() -> bool:
        plan = ok("/v1/waste/plan")  # the default depot: no parameter, as the console asks
        return bool(plan) and any(r["stops"] for r in plan["routes"])

    def history_days(days: float) -> Callable[[], bool]:
        def check() -> bool:
            # The page's default is the last 7 days: ask for the whole backfill's span.
            since = datetime.now(UTC) - timedelta(days=days + 2)
            rows = ok(
                "/v1/energy/meters/meter-001/consumption", bucket="1h", start=since.isoformat()
            )
            if not rows or not rows["items"]:
                return False
            first, last = rows["items"][0]["bucket"], rows["items"][-1]["bucket"]
            gap = datetime.fromisoformat(last) - datetime.fromisoformat(first)
            return gap.total_seconds() >= days * 86400

        return check

    def published() -> bool:
        last = read_progress(progress)
        return last is not None and datetime.now(UTC) - last <= PUBLISHED_WITHIN

    def calibrated() -> bool:
        states = [ok(f"/v1/devices/{d}/model") for d in SAMPLE_DEVICES]
        return all(s is not None and s["state"] == "calibrated" for s in states)

    return {
        "devices_registered": lambda: (ok("/v1/devices", limit=1) or {"total": 0})["total"] >= 215,
        "energy_history_1_day": history_days(1.0),
        "energy_history_caught_up": lambda: _caught_up(ok("/v1/console/freshness")),
        "backfill_published": published,
        "energy_history_14_days": history_days(14.0),
        "models_calibrated": calibrated,
        "energy_forecast": lambda: ok("/v1/energy/meters/meter-001/forecast") is not None,
        "traffic_forecast": lambda: ok("/v1/traffic/counters/counter-001/forecast") is not None,
        "bins_with_time_to_full": lambda: (
            sum(b["full_at"] is not None for b in (ok("/v1/waste/bins") or {"items": []})["items"])
            >= 100
        ),
        "alerts_raised": lambda: bool(ok("/v1/alerts", limit=1)),
        "plan_has_route": plan_has_route,
    }


def _caught_up(fresh: dict[str, Any] | None) -> bool:
    # Every domain has devices that reported in the last hour: the backfill reached the present.
    items = fresh["items"] if fresh is not None else []
    return bool(items) and all(i["reporting"] > 0 for i in items)


def cpu_seconds(pids: Path) -> dict[str, float]:
    """CPU time (user + system) each process of the stack used since it started, PostgreSQL's
    with its backends and workers (its children), by the names of the run directory's pid
    files."""
    out: dict[str, float] = {}
    for pid_file in sorted(pids.glob("*.pid")):
        name = pid_file.name.removesuffix(".pid")
        if name.endswith(".keeper"):
            continue
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        family = [pid, *(_children(pid) if name == "postgres" else [])]
        out[name] = round(sum(_cpu_s(p) for p in family), 1)
    return out


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # utime and stime: fields 14 and 15 of stat, 12 and 13 after the command's ")".
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--catch-up-steps",
        type=int,
        default=None,
        help="the simulator's --catch-up-steps (default: what `townpulse up` runs)",
    )
    parser.add_argument(
        "--continue-pending",
        action="store_true",
        help="go on polling the checks a run that reached its time limit left pending, on the "
        "stack it started (still running), timed from that run's start",
    )
    args = parser.parse_args()
    stack = Stack()
    if args.continue_pending:
        _continue(stack, timeout=args.timeout)
        return
    if (stack.run / "data").exists():
        sys.exit(f"{stack.run} was used before: give a new TOWNPULSE_RUN_DIR")
    env = os.environ.copy()
    if args.catch_up_steps is not None:
        # The simulator's options come from the stack's preset; its environment sets this one.
        env["TOWNPULSE_SIM_CATCH_UP_STEPS"] = str(args.catch_up_steps)
    started = datetime.now(UTC)
    subprocess.run([sys.executable, "-m", "townpulse", "up", "--sim"], check=True, env=env)
    up_s = (datetime.now(UTC) - started).total_seconds()
    seen = _poll(stack, started=started, names=None, timeout=args.timeout)
    _write(
        stack,
        started=started,
        simulator=[*LIVING_TOWN_ARGS, *_catch_up_args(args.catch_up_steps)],
        up_s=up_s,
        seen=seen,
    )


def _continue(stack: Stack, *, timeout: float) -> None:
    previous = json.loads((RESULTS / "first_run.json").read_text())
    if "started" in previous:
        started = datetime.fromisoformat(previous["started"])
    else:  # written before results recorded their start: it ended `elapsed_s` after it
        ended = datetime.fromisoformat(previous["meta"]["date"])
        started = ended - timedelta(seconds=previous["elapsed_s"])
    pending = [name for name, s in previous["seconds"].items() if s is None]
    seen = {**previous["seconds"], **_poll(stack, started=started, names=pending, timeout=timeout)}
    _write(
        stack,
        started=started,
        simulator=previous["simulator"],
        up_s=previous["up_s"],
        seen=seen,
        continued=True,
    )


def _poll(
    stack: Stack, *, started: datetime, names: list[str] | None, timeout: float
) -> dict[str, float | None]:
    """Seconds from `started` until each check (all, or `names`) first holds, None if not
    within `timeout` seconds of `started`."""
    env = read_env_file(stack.stack_env_file)
    key = Path(env["ADMIN_API_KEY_FILE"]).read_text().strip()
    seen: dict[str, float | None] = {}

    def elapsed() -> float:
        return (datetime.now(UTC) - started).total_seconds()

    with httpx.Client(
        base_url=env["API_URL"], headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as api:
        every = checks(api, progress=stack.run / "simulator" / "last-published")
        pending = {n: c for n, c in every.items() if names is None or n in names}
        while pending and elapsed() < timeout:
            for name, check in list(pending.items()):
                if check():
                    seen[name] = round(elapsed(), 1)
                    print(f"{seen[name]:7.1f} s  {name}")
                    del pending[name]
            time.sleep(POLL_S)
        seen.update({name: None for name in pending})
    return seen


def _write(
    stack: Stack,
    *,
    started: datetime,
    simulator: list[str],
    up_s: float,
    seen: dict[str, float | None],
    continued: bool = False,
) -> None:
    path = write_result(
        "first_run",
        {
            "benchmark": "first_run",
            "meta": run_meta(),
            "started": started.isoformat(),
            "continued": continued,
            "simulator": simulator,
            "up_s": round(up_s, 1),
            "seconds": seen,
            "cpu_s": cpu_seconds(stack.run / "pids"),
            "elapsed_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        },
    )
    print(f"wrote {path}")


def _catch_up_args(steps: int | None) -> list[str]:
    return [] if steps is None else ["--catch-up-steps", str(steps)]


if __name__ == "__main__":
    main()
