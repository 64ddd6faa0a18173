"""What a checkpoint costs: pickling and reloading each domain's per-device model.

    python -m bench.checkpoints               # -> bench/results/checkpoints.json
    python -m bench.checkpoints --weeks 2 --devices 10 --repeat 7

The simulator's town (a few devices of each domain) runs through each service's own processor,
reading by reading, for `--weeks` weeks: the states are those a service holds after that long.
Each state is then pickled as the runtime checkpoints it (`pickle.HIGHEST_PROTOCOL`,
shared/runtime/worker.py) and loaded back, `--repeat` times; the best pass per state is kept
(this machine is shared: the best pass is the cost, the others add what else ran), and the
median over a domain's devices is reported, with the pickled size.

A runtime checkpoints every dirty state every `checkpoint_interval_s` (30 s), and reloads a
state each time a device evicted from memory reports again (at most `max_devices` states stay
resident): both costs are per device and scale with the town. What a state holds in memory is
measured too: a fresh interpreter loads `--copies` copies of the domain's states, and its
resident memory grows by that many states (the sizes of Python's objects, allocator included).
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import command_line, run_meta, write_result
from services.energy.domain.meter import EnergyProcessor
from services.traffic.domain.counter import TrafficProcessor
from services.waste.domain.bin import WasteProcessor
from shared.runtime.processor import DeviceProcessor
from shared.schemas import Reading
from townpulse.simulator.readings import iter_readings
from townpulse.simulator.town import build_town

PROCESSORS: dict[str, DeviceProcessor[Any]] = {
    "energy": EnergyProcessor(),
    "waste": WasteProcessor(),
    "traffic": TrafficProcessor(),
}


def _states(*, devices: int, weeks: int, seed: int) -> dict[str, dict[str, Any]]:
    town = build_town(energy=devices, waste=devices, traffic=devices, seed=seed)
    start = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    states: dict[str, dict[str, Any]] = {d: {} for d in PROCESSORS}
    for r in iter_readings(town, start=start, end=start + timedelta(weeks=weeks)):
        domain, dev = r.device.domain.value, r.device.id
        proc = PROCESSORS[domain]
        state = states[domain].get(dev)
        if state is None:
            state = states[domain][dev] = proc.new_state(dev)
        readings = [Reading(ts=r.ts, metric=k, value=v) for k, v in r.metrics.items()]
        proc.process(state, device_id=dev, readings=readings)
    return states


def _best(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


# Run in a fresh interpreter: memory freed by other work would otherwise be reused and hide the
# growth. The first copy is loaded before the baseline, so importing the classes is not counted.
_RESIDENT = """
import gc, pickle, sys
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
blobs = pickle.load(open(sys.argv[1], "rb"))
copies = int(sys.argv[2])
first = [pickle.loads(b) for b in blobs]
gc.collect()
before = rss()
kept = [pickle.loads(blobs[i % len(blobs)]) for i in range(copies)]
gc.collect()
print((rss() - before) / copies)
"""


def resident_bytes(blobs: list[bytes], *, copies: int) -> float:
    """Resident memory one loaded state holds, measured over `copies` of them (Linux)."""
    with tempfile.NamedTemporaryFile(suffix=".pkl") as f:
        pickle.dump(blobs, f)
        f.flush()
        out = subprocess.run(  # noqa: S603 - fixed arguments
            [sys.executable, "-c", _RESIDENT, f.name, str(copies)],
            cwd=Path(__file__).resolve().parents[1],
            check=True,
            capture_output=True,
            text=True,
        )
    return float(out.stdout)


def measure(states: dict[str, Any], *, repeat: int, copies: int = 0) -> dict[str, Any]:
    dumps, loads, sizes, blobs = [], [], [], []
    for state in states.values():
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        sizes.append(len(blob))
        blobs.append(blob)
        dumps.append(
            _best(lambda s=state: pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL), repeat)
        )
        loads.append(_best(lambda b=blob: pickle.loads(b), repeat))  # noqa: S301 (our own blob)
    return {
        "devices": len(states),
        "pickle_ms_median": round(statistics.median(dumps) * 1000, 3),
        "unpickle_ms_median": round(statistics.median(loads) * 1000, 3),
        "bytes_median": int(statistics.median(sizes)),
        **(
            {"resident_kb": round(resident_bytes(blobs, copies=copies) / 1024, 1)} if copies else {}
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10, help="devices of each domain")
    ap.add_argument("--weeks", type=int, default=2, help="weeks of readings learnt first")
    ap.add_argument("--repeat", type=int, default=7, help="passes per state (best kept)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--copies", type=int, default=2000, help="states loaded to weigh one")
    ap.add_argument("--output", default="checkpoints")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    states = _states(devices=args.devices, weeks=args.weeks, seed=args.seed)
    result = {
        "benchmark": "checkpoints",
        "meta": run_meta(command=command_line("bench.checkpoints", argv)),
        "weeks": args.weeks,
        "repeat": args.repeat,
        "copies": args.copies,
        "domains": {
            d: measure(s, repeat=args.repeat, copies=args.copies) for d, s in states.items()
        },
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    path = write_result(args.output, result)
    for domain, r in result["domains"].items():
        print(
            f"{domain}: {r['pickle_ms_median']} ms to pickle, {r['unpickle_ms_median']} ms to "
            f"load, {r['bytes_median']} bytes (median of {r['devices']}), "
            f"{r.get('resident_kb')} kB in memory"
        )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
