"""From `townpulse up` on an empty run directory to a living town: how long until each console
page has its data.

    TOWNPULSE_RUN_DIR=/tmp/tp-first-run .venv/bin/python -m bench.first_run

The run directory must be new (nothing started there before) and the stack's ports free. Times
are measured from the start of `townpulse up` (which includes starting PostgreSQL, Kafka,
Mosquitto and the services) to the first moment each check holds, polled every 2 s. The stack is
left running; `townpulse down` stops it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import run_meta, write_result
from townpulse.stack import Stack, read_env_file

POLL_S = 2.0


def checks(api: httpx.Client) -> dict[str, Callable[[], bool]]:
    """What a first-time user sees on each page, as API answers."""

    def ok(path: str, **params: Any) -> Any:
        r = api.get(path, params=params)
        return r.json() if r.status_code == 200 else None

    def plan_has_route() -> bool:
        plan = ok("/v1/waste/plan")  # the default depot: no parameter, as the console asks
        return bool(plan) and any(r["stops"] for r in plan["routes"])

    def history_days(days: float) -> Callable[[], bool]:
        def check() -> bool:
            rows = ok("/v1/energy/meters/meter-001/consumption", bucket="1h")
            if not rows or not rows["items"]:
                return False
            first, last = rows["items"][0]["bucket"], rows["items"][-1]["bucket"]
            gap = datetime.fromisoformat(last) - datetime.fromisoformat(first)
            return gap.total_seconds() >= days * 86400

        return check

    return {
        "devices_registered": lambda: (ok("/v1/devices", limit=1) or {"total": 0})["total"] >= 215,
        "energy_history_1_day": history_days(1.0),
        "energy_history_caught_up": lambda: _caught_up(ok("/v1/console/freshness")),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    stack = Stack()
    if (stack.run / "data").exists():
        sys.exit(f"{stack.run} was used before: give a new TOWNPULSE_RUN_DIR")
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "townpulse", "up", "--sim"], check=True, env=os.environ.copy()
    )
    up_s = time.monotonic() - t0
    env = read_env_file(stack.stack_env_file)
    key = Path(env["ADMIN_API_KEY_FILE"]).read_text().strip()
    seen: dict[str, float | None] = {}
    with httpx.Client(
        base_url=env["API_URL"], headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as api:
        pending = checks(api)
        while pending and time.monotonic() - t0 < args.timeout:
            for name, check in list(pending.items()):
                if check():
                    seen[name] = round(time.monotonic() - t0, 1)
                    print(f"{seen[name]:7.1f} s  {name}")
                    del pending[name]
            time.sleep(POLL_S)
        seen.update({name: None for name in pending})
    path = write_result(
        "first_run",
        {"benchmark": "first_run", "meta": run_meta(), "up_s": round(up_s, 1), "seconds": seen},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
