"""Backup and restore of the simulated town after a month of data: durations and sizes.

    .venv/bin/python -m bench.backup [--days 30] [--sim-days 1]

Starts a stack of its own (a fresh run directory in /tmp, free ports, its own backup directory),
runs the town simulator's backfill for `--sim-days` through the whole pipeline (MQTT, Kafka,
storage, the models), then makes a month of it: the rows of those days are copied to each
earlier day (readings, scores, levels, flows, forecasts; the continuous aggregates refreshed),
as the backfill cannot go back more than a week and through the pipeline a month would take
hours on two cores. Then: a full backup, a day of data more and a differential backup, and a
restore of the newest backup into another fresh run directory (database and files; the stack
started as a separate step). Everything is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.common import REPO, run_meta, write_result
from townpulse.stack import SERVICES, Stack, StackSettings, read_env_file

PORTS = (
    "postgres_port",
    "kafka_port",
    "kafka_controller_port",
    "mqtt_port",
    "mqtts_port",
    *(spec.port_setting for spec in SERVICES),
)
# Tables whose rows are one per device and time: copied day by day to make the month.
COPIED = {
    "readings": "ts",
    "energy_scores": "ts",
    "energy_forecasts": "target_ts",
    "waste_levels": "ts",
    "traffic_flows": "ts",
    "device_uplinks": "ts",
}


def _free_ports() -> dict[str, int]:
    socks = [socket.socket() for _ in PORTS]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = {name: s.getsockname()[1] for name, s in zip(PORTS, socks, strict=True)}
    for s in socks:
        s.close()
    return ports


class BenchStack:
    def __init__(self, root: Path, name: str, backup_dir: Path) -> None:
        ports = _free_ports()
        self.settings = StackSettings.model_validate(
            {"run_dir": root / name, "backup_dir": backup_dir, **ports}
        )
        self.env = {
            **os.environ,
            "TOWNPULSE_RUN_DIR": str(root / name),
            "TOWNPULSE_BACKUP_DIR": str(backup_dir),
            **{f"TOWNPULSE_{k.upper()}": str(v) for k, v in ports.items()},
        }

    @property
    def stack(self) -> Stack:
        return Stack(self.settings)

    def cli(self, *args: str) -> tuple[float, str]:
        """Run `townpulse ARGS` for this stack: seconds taken and its output."""
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "townpulse", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"townpulse {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return time.monotonic() - started, done.stdout


def _simulate(bench: BenchStack, days: int) -> float:
    env = {**bench.env, **read_env_file(bench.stack.stack_env_file)}
    started = time.monotonic()
    subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "townpulse",
            "simulate",
            "--backfill",
            f"{days}d",
            "--duration",
            f"{days}d",
            "--speed",
            "100000",
            "--inject",
            "all",
        ],
        env=env,
        cwd=REPO,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def _stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    return int(row[0]) if row else 0


def _wait_stored(url: str) -> None:
    """Until the readings count stops moving for 10 s (the pipeline has drained)."""
    last, still = -1, 0
    while still < 5:
        n = _stored(url)
        still = still + 1 if n == last else 0
        last = n
        time.sleep(2)


def _copy(url: str, *, window_days: int, shifts: list[int]) -> None:
    """Copy the rows of the last `window_days` days, moved back by each of `shifts` days."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table, ts in COPIED.items():
            moved = sql.SQL(
                "INSERT INTO {t} SELECT (jsonb_populate_record(NULL::{t}, to_jsonb(r)"
                " || jsonb_build_object({name}, r.{ts} - %s * interval '1 day'))).*"
                " FROM {t} r WHERE r.{ts} > now() - %s * interval '1 day' ON CONFLICT DO NOTHING"
            ).format(t=sql.Identifier(table), ts=sql.Identifier(ts), name=sql.Literal(ts))
            for k in shifts:
                conn.execute(moved, (k, window_days))
        for view in ("readings_hourly", "readings_daily"):
            conn.execute(
                sql.SQL(
                    "CALL refresh_continuous_aggregate({}, now() - %s * interval '1 day', now())"
                ).format(sql.Literal(view)),
                (max(shifts) + window_days + 2,),
            )


def _counts(url: str) -> dict[str, int]:
    counts = {}
    with psycopg.connect(url) as conn:
        for table in (*COPIED, "readings_hourly", "readings_daily"):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            row = conn.execute(query).fetchone()
            counts[table] = int(row[0]) if row else 0
        size = conn.execute("SELECT pg_database_size('townpulse')").fetchone()
        counts["database_bytes"] = int(size[0]) if size else 0
    return counts


def _report(bench: BenchStack, label: str) -> dict[str, Any]:
    path = bench.settings.backup_dir / "reports" / f"{label}.json"
    value: dict[str, Any] = json.loads(path.read_text())
    return value


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backup", description=__doc__)
    parser.add_argument("--days", type=int, default=30, help="days of data to back up")
    parser.add_argument("--sim-days", type=int, default=1, help="days through the pipeline")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="tp-bench-backup-"))
    os.chmod(root, 0o711)  # noqa: S103 - PostgreSQL and Mosquitto (own users) traverse it
    backups = root / "backups"
    source = BenchStack(root, "source", backups)
    target = BenchStack(root, "restored", root / "restored-backups")
    result: dict[str, Any] = {
        "benchmark": "backup",
        "meta": run_meta(),
        "days": args.days,
        "sim_days": args.sim_days,
    }
    try:
        result["up_s"] = round(source.cli("up", "--no-sim")[0], 1)
        url = source.stack.superuser_url("townpulse")
        result["simulate_s"] = round(_simulate(source, args.sim_days), 1)
        _wait_stored(url)
        started = time.monotonic()
        _copy(
            url,
            window_days=args.sim_days,
            shifts=list(range(args.sim_days, args.days, args.sim_days)),
        )
        result["extend_s"] = round(time.monotonic() - started, 1)
        result["rows"] = _counts(url)

        seconds, out = source.cli("backup", "run", "--kind", "full")
        full = json.loads(out)
        result["full"] = {"wall_s": round(seconds, 1), **_pick(full)}
        # A day more (the newest day copied once more, before the month), then the daily
        # differential.
        _copy(url, window_days=1, shifts=[args.days])
        seconds, out = source.cli("backup", "run", "--kind", "diff")
        diff = json.loads(out)
        result["diff"] = {"wall_s": round(seconds, 1), **_pick(diff)}
        result["backup_dir_bytes"] = _du(backups)

        passphrase = source.stack.secrets_dir / "backup-passphrase"
        seconds, _ = target.cli(
            "restore", "--from", str(backups), "--passphrase-file", str(passphrase), "--no-start"
        )
        result["restore_s"] = round(seconds, 1)
        restored_url = target.stack.superuser_url("townpulse")
        result["restored_readings"] = _stored(restored_url)
        result["source_readings"] = _stored(url)
        seconds, _ = target.cli("up", "--no-sim")
        result["restored_up_s"] = round(seconds, 1)
    finally:
        for bench in (target, source):
            subprocess.run(
                [sys.executable, "-m", "townpulse", "down"],
                env=bench.env,
                cwd=REPO,
                check=False,
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)
    path = write_result("backup", result)
    print(f"wrote {path}")
    return 0


def _pick(report: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "label",
        "duration_s",
        "database_size_bytes",
        "repository_bytes",
        "files_bytes",
        "size_bytes",
        "verified",
    )
    return {k: report.get(k) for k in keys}


if __name__ == "__main__":
    raise SystemExit(main())
