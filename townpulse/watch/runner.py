"""The watch's loop: observe, judge, send the episodes' events, remember what is open.

Its state (`<run_dir>/watch/state.json`) holds the open conditions, the disk and restart
samples the rates come from, and when the watch first ran (the backups' grace period starts
there). Events go to Kafka before the state is saved: a crash between the two sends the same
event ids again, which the alerts service applies once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.kafka import create_producer
from shared.schemas import AlertEvent, Severity
from shared.topics import ALERTS_TOPIC
from townpulse.watch import checks, footprint
from townpulse.watch.checks import Condition, Open
from townpulse.watch.observe import Machine
from townpulse.watch.settings import WatchSettings

log = logging.getLogger("townpulse.watch")

# Restart counters are judged over an hour; disk samples kept at most one per this interval,
# so that a day of them stays small whatever the check interval.
RESTART_WINDOW = timedelta(hours=1)
DISK_SAMPLE_EVERY = timedelta(minutes=5)


class State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.first_run_at = datetime.now(UTC)
        self.open: dict[str, Open] = {}
        self.disk: dict[str, list[tuple[datetime, int]]] = {}
        self.restarts: dict[str, list[tuple[datetime, int]]] = {}
        self.last_backup_ok_at: datetime | None = None

    @classmethod
    def load(cls, path: Path) -> State:
        state = cls(path)
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return state
        except (OSError, ValueError) as exc:
            # A damaged state only costs rates and restart history: start afresh, say so.
            log.warning("unreadable %s (%s): starting afresh", path, exc)
            return state
        state.first_run_at = datetime.fromisoformat(raw["first_run_at"])
        state.open = {
            key: Open(
                episode_start=datetime.fromisoformat(o["episode_start"]),
                severity=Severity(o["severity"]),
                subject=o["subject"],
                kind=o["kind"],
            )
            for key, o in raw.get("open", {}).items()
        }
        state.disk = _samples(raw.get("disk", {}))
        state.restarts = _samples(raw.get("restarts", {}))
        last = raw.get("last_backup_ok_at")
        state.last_backup_ok_at = datetime.fromisoformat(last) if last else None
        return state

    def save(self) -> None:
        raw = {
            "first_run_at": self.first_run_at.isoformat(),
            "open": {
                key: {
                    "episode_start": o.episode_start.isoformat(),
                    "severity": o.severity.value,
                    "subject": o.subject,
                    "kind": o.kind,
                }
                for key, o in self.open.items()
            },
            "disk": _dump(self.disk),
            "restarts": _dump(self.restarts),
            "last_backup_ok_at": (
                self.last_backup_ok_at.isoformat() if self.last_backup_ok_at else None
            ),
        }
        # The watch's own: which disks fill and how fast is nobody else's to read.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)


def _samples(raw: dict[str, list[list[Any]]]) -> dict[str, list[tuple[datetime, int]]]:
    return {k: [(datetime.fromisoformat(t), int(n)) for t, n in v] for k, v in raw.items()}


def _dump(samples: dict[str, list[tuple[datetime, int]]]) -> dict[str, list[list[Any]]]:
    return {k: [[t.isoformat(), n] for t, n in v] for k, v in samples.items()}


def check(machine: Machine, state: State, *, now: datetime) -> list[Condition]:
    """One look at the machine: the conditions that hold now (and the samples it took)."""
    s = machine.s
    found: list[Condition] = []

    status = machine.backup_status()
    for d in machine.disks(status):
        samples = state.disk.setdefault(d.name, [])
        if not samples or now - samples[-1][0] >= DISK_SAMPLE_EVERY:
            samples.append((now, d.used))
        window = timedelta(hours=s.disk_rate_window_h)
        samples[:] = [(t, n) for t, n in samples if t >= now - window]
        rate = checks.growth_rate(
            [*samples, (now, d.used)], min_span=timedelta(hours=s.disk_rate_min_span_h)
        )
        c = checks.disk(name=d.name, path=str(d.path), used=d.used, total=d.total, rate=rate, s=s)
        found += [c] if c else []

    if status is not None and status.get("ok") is True:
        try:
            finished = datetime.fromisoformat(str(status["finished_at"]))
        except (KeyError, ValueError):
            log.warning("backup status without a readable finished_at: %s", status)
        else:
            finished = finished if finished.tzinfo else finished.replace(tzinfo=UTC)
            # The newest report is the truth (a backup restored from an older one is older).
            state.last_backup_ok_at = finished
    c = checks.backup(
        last_ok_at=state.last_backup_ok_at,
        last_run=status,
        first_run_at=state.first_run_at,
        now=now,
        s=s,
    )
    found += [c] if c else []

    for name, (path, not_after) in machine.certificates().items():
        c = checks.certificate(name=name, path=str(path), not_after=not_after, now=now, s=s)
        found += [c] if c else []

    counts = machine.restart_counts()
    for name in list(state.restarts):
        if name not in counts:
            del state.restarts[name]
    for name, count in counts.items():
        samples = state.restarts.setdefault(name, [])
        samples.append((now, count))
        # One sample older than the window is the baseline of what happened within it.
        older = [x for x in samples if x[0] <= now - RESTART_WINDOW]
        samples[:] = older[-1:] + [x for x in samples if x[0] > now - RESTART_WINDOW]
        n = checks.restarts_within(samples, now=now, window=RESTART_WINDOW)
        c = checks.restarts(name=name, count=n, s=s)
        found += [c] if c else []
    return found


async def run(settings: WatchSettings) -> None:
    machine = Machine(settings)
    state = State.load(settings.run_dir / "watch" / "state.json")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    producer = create_producer(settings.kafka_bootstrap, client_id=f"watch-{os.getpid()}")
    await producer.start()
    # The footprint's samples on their own schedule, beside the checks (its own failures are
    # logged and retried there; a crash of it ends the watch, which its keeper restarts).
    sampling = asyncio.create_task(footprint.run(settings, stopping))
    try:
        while not stopping.is_set():
            now = datetime.now(UTC)
            found = await asyncio.to_thread(check, machine, state, now=now)
            events, state.open = checks.transitions(state.open, found, now=now)
            await _send(producer, events)
            state.save()
            for e in events:
                log.info("%s %s %s: %s", e.phase, e.device_id, e.kind, e.explanation["message"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=settings.watch_interval_s)
            if sampling.done():
                sampling.result()
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await sampling
        await producer.stop()


async def _send(producer: Any, events: list[AlertEvent]) -> None:
    futures = [
        await producer.send(ALERTS_TOPIC, e.to_bytes(), key=e.device_id.encode()) for e in events
    ]
    # Acknowledged by Kafka before the state says they were sent.
    await asyncio.gather(*futures)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run(WatchSettings()))
