"""What one codec call costs: a Milesight EM310-UDL uplink decoded in TownPulse's QuickJS sandbox.

    python -m bench.codec                    # -> bench/results/codec.json
    python -m bench.codec --calls 50000 --fresh-calls 2000

The codec and its example come from the local TTN Device Repository copy
(`$TOWNPULSE_DEVICE_REPOSITORY`, else `../shared/data/lorawan-devices`). Three ways are timed, each
call on its own (wall clock, `perf_counter_ns`) and all of them together in CPU time
(`process_time`):

- `kept`: the gateway's way, one `CodecSandbox` per codec version, loaded once and called for
  every uplink (input passed as JSON text, output serialised by the sandbox's own JavaScript
  serialiser, parsed and checked in Python);
- `fresh`: a new sandbox (QuickJS runtime, prelude, script) for every call, for comparison;
- `bare`: the `quickjs` binding alone, context kept, no guards (the native `JSON.stringify`,
  no limits): what the sandbox's safety costs on top.

Calls are warmed up first; the machine is shared, so the p99 carries whatever else ran.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import quickjs

from bench.common import command_line, data_dir, run_meta, write_result
from services.gateway.ingest.codec import CodecSandbox, load_repository_codec

CODEC = "milesight-iot/em310-udl"


def repository(override: str | None = None) -> Path:
    if override:
        return Path(override)
    env = os.environ.get("TOWNPULSE_DEVICE_REPOSITORY")
    return Path(env) if env else data_dir() / "lorawan-devices"


def measure(call: Callable[[], Any], *, calls: int, warmup: int) -> dict[str, float]:
    """Per-call wall time (mean, p50, p99, max) and mean CPU time, in microseconds."""
    for _ in range(warmup):
        call()
    times = []
    cpu = time.process_time()
    for _ in range(calls):
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    cpu = time.process_time() - cpu
    times.sort()
    return {
        "calls": calls,
        "mean_us": round(statistics.fmean(times) / 1000, 2),
        "p50_us": round(times[len(times) // 2] / 1000, 2),
        "p99_us": round(times[min(len(times) - 1, int(len(times) * 0.99))] / 1000, 2),
        "max_us": round(times[-1] / 1000, 2),
        "cpu_mean_us": round(cpu / calls * 1e6, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20_000, help="calls of a kept context")
    ap.add_argument("--fresh-calls", type=int, default=2_000, help="calls with a fresh context")
    ap.add_argument("--repository", help="the Device Repository copy")
    ap.add_argument("--output", default="codec")
    args = ap.parse_args(argv)
    root = repository(args.repository)
    codec = load_repository_codec(root, CODEC)
    example = codec.examples[0]
    payload, f_port, now = example.bytes, example.f_port, datetime.now(UTC)

    sandbox = CodecSandbox(codec.script)
    assert sandbox.decode(payload, f_port=f_port, recv_time=now).data == example.output["data"]

    bare = quickjs.Context()
    bare.eval(codec.script)
    bare_run = bare.eval(
        "(function (t) { var i = JSON.parse(t); i.recvTime = new Date(i.recvTime);"
        " return JSON.stringify(decodeUplink(i)); })"
    )
    text = '{"bytes":[' + ",".join(map(str, payload)) + f'],"fPort":{f_port},"recvTime":0' + "}"

    rows = {
        "kept": measure(
            lambda: sandbox.decode(payload, f_port=f_port, recv_time=now),
            calls=args.calls,
            warmup=1000,
        ),
        "fresh": measure(
            lambda: CodecSandbox(codec.script).decode(payload, f_port=f_port, recv_time=now),
            calls=args.fresh_calls,
            warmup=50,
        ),
        "bare": measure(lambda: bare_run(text), calls=args.calls, warmup=1000),
    }
    memory = sandbox.memory_bytes()
    result = {
        "benchmark": "codec",
        "meta": run_meta(command=command_line("bench.codec", argv), data=root),
        "codec": CODEC,
        "payload_bytes": len(payload),
        "quickjs": "quickjs (PyPI) with QuickJS 2021-03-27",
        "limits": {
            "time_limit_s": sandbox.time_limit_s,
            "memory_limit_bytes": sandbox.memory_limit_bytes,
            "max_output_bytes": sandbox.max_output_bytes,
        },
        "context_memory_bytes": memory,
        "rows": rows,
    }
    path = write_result(args.output, result)
    print(f"{'one EM310-UDL decode':<42} {'mean':>9} {'p50':>9} {'p99':>9} {'CPU mean':>9}")
    labels = {
        "kept": "sandbox, context kept per codec",
        "fresh": "sandbox, fresh context per call",
        "bare": "bare binding, context kept (no guards)",
    }
    for key, row in rows.items():
        print(
            f"{labels[key]:<42} {row['mean_us']:>7} us {row['p50_us']:>6} us"
            f" {row['p99_us']:>6} us {row['cpu_mean_us']:>6} us"
        )
    print(f"context memory: {memory / 1024:.0f} KiB; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
