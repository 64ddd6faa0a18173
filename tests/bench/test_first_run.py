"""The first-run benchmark's accounting of CPU time per process of the stack."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.first_run import cpu_seconds

pytestmark = pytest.mark.unit


def test_cpu_time_is_read_per_pid_file_keepers_left_out(tmp_path: Path) -> None:
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass  # some CPU time of our own to find
    (tmp_path / "storage.pid").write_text(f"{os.getpid()} services.storage\n")
    (tmp_path / "storage.keeper.pid").write_text(f"{os.getpid()} townpulse.keeper\n")
    (tmp_path / "gone.pid").write_text("not a pid\n")
    cpu = cpu_seconds(tmp_path)
    assert set(cpu) == {"storage"}
    own = os.times()
    # /proc counts in clock ticks, the result is rounded to 0.1 s.
    assert cpu["storage"] == pytest.approx(own.user + own.system, abs=0.1)
