"""Keeps one service of the local stack running: starts it, and starts it again when it exits.

    python -m townpulse.keeper NAME PID_DIR MARKER [--user U] [--stop-signal SIGINT]
        [--stop-timeout S] [--max-delay S] -- COMMAND...

A service exits when one of its tasks dies (shared/supervise.py) or when it cannot start (a
dependency is down); the keeper restarts it with backoff (1 s doubling to 30 s, or
`--max-delay`, back to 1 s once it has run for a minute), writes the child's pid to
`PID_DIR/NAME.pid` (so that the stack stops or kills the service by pid) and its restarts to
`PID_DIR/NAME.keeper.json` (`make status`). The infrastructure is kept the same way: Kafka
exits for good when its log directory fails (a full disk), and nothing else would start it.
SIGTERM stops the child (its stop signal, SIGTERM unless `--stop-signal`, then SIGKILL after
`--stop-timeout`, 30 s) and the keeper; `--user` runs the child as that OS user (PostgreSQL
refuses root). docker-compose's `restart: unless-stopped` and systemd's `Restart=on-failure`
play this part elsewhere.
"""

from __future__ import annotations

import argparse
import json
import pwd
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
# A child that ran this long was healthy: its next crash starts the backoff again.
HEALTHY_AFTER_S = 60.0
STOP_TIMEOUT_S = 30.0


class Keeper:
    def __init__(
        self,
        *,
        name: str,
        pid_dir: Path,
        marker: str,
        command: list[str],
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        max_delay_s: float = MAX_DELAY_S,
    ) -> None:
        self.name = name
        self.pid_dir = pid_dir
        self.marker = marker
        self.command = command
        self.user = user
        self.stop_signal = stop_signal
        self.stop_timeout_s = stop_timeout_s
        self.max_delay_s = max_delay_s
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.last_exit: int | None = None

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(self.stop_signal)

    def _state(self, **extra: object) -> None:
        state = {
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "updated_at": datetime.now(UTC).isoformat(),
            **extra,
        }
        tmp = self.pid_dir / f".{self.name}.keeper.json"
        tmp.write_text(json.dumps(state))
        tmp.replace(self.pid_dir / f"{self.name}.keeper.json")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        delay = FIRST_DELAY_S
        self._state(state="starting")
        while not self.stopping:
            started = time.monotonic()
            kwargs: dict[str, object] = {}
            if self.user:
                pw = pwd.getpwnam(self.user)
                kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
            self.child = subprocess.Popen(  # noqa: S603 - the stack's own command lines
                self.command,
                stdin=subprocess.DEVNULL,
                **kwargs,  # type: ignore[call-overload]
            )
            (self.pid_dir / f"{self.name}.pid").write_text(f"{self.child.pid} {self.marker}\n")
            self._state(state="running", pid=self.child.pid)
            code = self._wait()
            self.last_exit = code
            if self.stopping:
                break
            ran = time.monotonic() - started
            delay = FIRST_DELAY_S if ran >= HEALTHY_AFTER_S else min(self.max_delay_s, delay * 2)
            self.restarts += 1
            print(
                f"keeper: {self.name} exited with {code} after {ran:.1f} s; "
                f"restart {self.restarts} in {delay:.0f} s",
                flush=True,
            )
            self._state(state="backoff", next_start_in_s=delay)
            deadline = time.monotonic() + delay
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.1)
        (self.pid_dir / f"{self.name}.pid").unlink(missing_ok=True)
        self._state(state="stopped")
        return 0

    def _wait(self) -> int:
        assert self.child is not None
        while True:
            try:
                code = self.child.wait(timeout=self.stop_timeout_s if self.stopping else None)
                return code
            except subprocess.TimeoutExpired:
                self.child.kill()
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") < 3:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m townpulse.keeper", usage=__doc__)
    parser.add_argument("name")
    parser.add_argument("pid_dir", type=Path)
    parser.add_argument("marker")
    parser.add_argument("--user")
    parser.add_argument("--stop-signal", default="SIGTERM", type=lambda v: signal.Signals[v])
    parser.add_argument("--stop-timeout", type=float, default=STOP_TIMEOUT_S)
    parser.add_argument("--max-delay", type=float, default=MAX_DELAY_S)
    args = parser.parse_args(argv[:split])
    keeper = Keeper(
        name=args.name,
        pid_dir=args.pid_dir,
        marker=args.marker,
        command=argv[split + 1 :],
        user=args.user,
        stop_signal=args.stop_signal,
        stop_timeout_s=args.stop_timeout,
        max_delay_s=args.max_delay,
    )
    return keeper.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
