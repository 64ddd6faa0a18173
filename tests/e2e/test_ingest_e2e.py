"""From the outside: register a device, publish with mosquitto_pub, read back; `make down` and
`make up` keep the data."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support import RegisteredDevice, count_readings, wait_for

pytestmark = pytest.mark.e2e


def test_thousand_readings_survive_down_and_up(
    api: httpx.Client, device_factory, repo_root
) -> None:
    device = device_factory("waste")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    lines = "\n".join(
        json.dumps(
            {
                "ts": (base + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
                "fill_pct": round(i / 10, 1),
            }
        )
        for i in range(1000)
    )
    # The Mosquitto C client, QoS 1, one message per line, with the device's own credentials.
    _mosquitto_pub(device, "-q", "1", "-l", input=lines.encode())
    wait_for(
        lambda: count_readings(api, device.id) == 1000, timeout=60, what="1000 readings stored"
    )

    subprocess.run(["make", "down"], cwd=repo_root, check=True, timeout=300)
    with pytest.raises(httpx.HTTPError):
        api.get("/healthz")
    subprocess.run(["make", "up", "SIM=0"], cwd=repo_root, check=True, timeout=600)

    assert count_readings(api, device.id) == 1000
    hourly = api.get(
        f"/v1/devices/{device.id}/readings", params={"start": base.isoformat(), "bucket": "1h"}
    ).json()["items"]
    assert sum(b["count"] for b in hourly) == 1000


def test_qos0_readings_are_accepted_as_best_effort(api: httpx.Client, device_factory) -> None:
    """QoS 0 is the device saying a loss is acceptable: the reading is stored like any other,
    with no guarantee across a crash (README, "Nothing lost, nothing doubled")."""
    device = device_factory("energy")
    ts = (datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)).isoformat()
    _mosquitto_pub(device, "-q", "0", "-m", json.dumps({"ts": ts, "energy_kwh": 1.5}))
    wait_for(lambda: count_readings(api, device.id) == 1, timeout=60, what="the QoS 0 reading")


def _mosquitto_pub(device: RegisteredDevice, *args: str, input: bytes | None = None) -> None:
    """The Mosquitto C client with the device's own credentials."""
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            device.host,
            "-p",
            str(device.port),
            "-i",
            device.username,
            "-u",
            device.username,
            "-P",
            device.password,
            "-t",
            device.topic,
            *args,
        ],
        input=input,
        check=True,
        timeout=120,
    )
