"""shared.http.serve_together: services sharing a process stop and fail together."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from shared.supervise import EXIT_TASK_DIED
from townpulse.stack import REPO

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_task_dying_in_one_service_stops_its_neighbour_and_fails_the_process() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.townpulse.dying_service",
            str(_free_port()),
            str(_free_port()),
        ],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    # EX_SOFTWARE, for the process manager to start both again.
    assert proc.returncode == EXIT_TASK_DIED, proc.stderr[-2000:]
    lines = [json.loads(ln) for ln in proc.stderr.decode().splitlines() if ln.startswith("{")]
    said = {(ln["service"], ln["message"]) for ln in lines}
    assert ("dying", "task doomed stopped unexpectedly; exiting") in said
    # The healthy neighbour started, then was stopped in order (its lifespan ran to the end).
    assert ("healthy", "Application startup complete.") in said
    assert ("healthy", "Application shutdown complete.") in said
