"""The `townpulse` CLI against the running stack."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "townpulse", *args], capture_output=True, text=True, timeout=120
    )


def test_devices_add_list_remove() -> None:
    device_id = f"cli-{uuid.uuid4().hex[:8]}"
    added = _cli("devices", "add", device_id, "--domain", "waste", "--lat", "45.9", "--lon", "6.1")
    assert added.returncode == 0, added.stderr
    creds = json.loads(added.stdout)["mqtt"]
    assert creds["username"] == device_id and creds["password"]
    listed = _cli("devices", "list")
    assert device_id in listed.stdout
    assert _cli("devices", "remove", device_id).returncode == 0
    assert device_id not in _cli("devices", "list").stdout
    assert _cli("devices", "remove", device_id).returncode == 1


def test_status_lists_every_component_with_pid_and_port() -> None:
    out = _cli("status").stdout
    for name in ("postgres", "kafka", "mosquitto", "gateway", "storage", "api", "energy"):
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert " up " in line, line
        assert line.split()[2].isdigit(), line
    assert any(line.startswith("mqtt broker: Mosquitto 2.") for line in out.splitlines()), out
