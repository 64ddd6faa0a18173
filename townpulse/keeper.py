"""Keeps one service of the local stack running: starts it, and starts it again when it exits.

    python -m townpulse.keeper NAME PID_DIR MARKER -- COMMAND...

A service exits when one of its tasks dies (shared/supervise.py) or when it cannot start (a
dependency is down); the keeper restarts it with backoff (1 s doubling to 30 s, back to 1 s once
it has run for a minute), writes the child's pid to `PID_DIR/NAME.pid` (so that the stack stops
or kills the service by pid) and its restarts to `PID_DIR/NAME.keeper.json` (`make status`).
SIGTERM stops the child (SIGTERM, then SIGKILL after 30 s) and the keeper. docker-compose's
`restart: unless-stopped` and systemd's `Restart=on-failure` play this part elsewhere.
"""

from __future__ import annotations

import json
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
    def __init__(self, *, name: str, pid_dir: Path, marker: str, command: list[str]) -> None:
        self.name = name
        self.pid_dir = pid_dir
        self.marker = marker
        self.command = command
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.last_exit: int | None = None

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

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
            self.child = subprocess.Popen(self.command, stdin=subprocess.DEVNULL)  # noqa: S603
            (self.pid_dir / f"{self.name}.pid").write_text(f"{self.child.pid} {self.marker}\n")
            self._state(state="running", pid=self.child.pid)
            code = self._wait()
            self.last_exit = code
            if self.stopping:
                break
            ran = time.monotonic() - started
            delay = FIRST_DELAY_S if ran >= HEALTHY_AFTER_S else min(MAX_DELAY_S, delay * 2)
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
                code = self.child.wait(timeout=STOP_TIMEOUT_S if self.stopping else None)
                return code
            except subprocess.TimeoutExpired:
                self.child.kill()
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") != 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, pid_dir, marker = argv[:3]
    keeper = Keeper(name=name, pid_dir=Path(pid_dir), marker=marker, command=argv[4:])
    return keeper.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
