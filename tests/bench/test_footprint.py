"""Unit tests for `bench.footprint`: which install the measured services run from."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from bench.footprint import _install

pytestmark = pytest.mark.unit


def test_install_names_a_process_interpreter_and_whether_it_has_the_dev_extras() -> None:
    # The child says when it runs its own code, then waits for its input to close: no sleep.
    script = "import sys; print('up', flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        child.stdout.readline()  # running its own code: its command line is in place
        install = _install(child.pid)
        child.communicate()  # closes its input: it exits
    assert install["python"] == sys.executable
    assert install["dev_extras"] is (importlib.util.find_spec("sklearn") is not None)
