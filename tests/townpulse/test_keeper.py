"""A service whose task dies exits non-zero, and its keeper starts it again with backoff."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import wait_for
from townpulse.stack import REPO

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_task_exits_the_process_and_the_keeper_restarts_it(tmp_path: Path) -> None:
    port = _free_port()
    keeper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "townpulse.keeper",
            "dying",
            str(tmp_path),
            "dying_service",
            "--",
            sys.executable,
            "-m",
            "tests.townpulse.dying_service",
            str(port),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state_file = tmp_path / "dying.keeper.json"

    def state() -> dict:
        try:
            return dict(json.loads(state_file.read_text()))
        except (OSError, ValueError):
            return {}

    try:
        got = wait_for(
            lambda: (s := state()).get("restarts", 0) >= 2 and s,
            timeout=60,
            what="two restarts",
        )
        # EX_SOFTWARE (shared/supervise.py): not a clean exit, which a process manager ignores.
        assert got["last_exit"] == 70
        child = int((tmp_path / "dying.pid").read_text().split()[0])
        assert child != keeper.pid
    finally:
        keeper.send_signal(signal.SIGTERM)
        assert keeper.wait(timeout=60) == 0
    assert state()["state"] == "stopped"
    assert not (tmp_path / "dying.pid").exists()
