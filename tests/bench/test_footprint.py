"""Unit tests for `bench.footprint`: which install the measured services run from."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from bench.footprint import _install

pytestmark = pytest.mark.unit


def test_install_names_a_process_interpreter_and_whether_it_has_the_dev_extras() -> None:
    script = "import time; print('up', flush=True); time.sleep(60)"
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            child.stdout.readline()  # running its own code: its command line is in place
            install = _install(child.pid)
        finally:
            child.kill()
    assert install["python"] == sys.executable
    assert install["dev_extras"] is (importlib.util.find_spec("sklearn") is not None)
