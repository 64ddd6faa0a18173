"""A Mosquitto of the tests' own: a network server's broker, or one to restart at will.

The stack's Mosquitto binary, persistence on, a free port on loopback, so that it can be stopped
and restarted without disturbing the stack.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from townpulse.stack import StackSettings
from townpulse.stack.mosquitto import find_install
from townpulse.stack.processes import wait_port


class Broker:
    def __init__(self, root: Path) -> None:
        # Not under pytest's tmp_path: its parents are private to root, and Mosquitto runs as
        # its own user.
        self.data = Path(tempfile.mkdtemp(prefix="townpulse-mosquitto-"))
        if os.geteuid() == 0:  # Mosquitto drops to its own user, which must own its data.
            pw = pwd.getpwnam("mosquitto")
            os.chown(self.data, pw.pw_uid, pw.pw_gid)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = root / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.data}/\n"
            "autosave_on_changes true\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        broker = find_install(StackSettings()).broker
        self.proc = subprocess.Popen([str(broker), "-c", str(self.conf)])
        wait_port(self.port, timeout=10, what="the test's mosquitto")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)  # saves its persistence file, as a restart does
            self.proc.wait(timeout=10)
            self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)
