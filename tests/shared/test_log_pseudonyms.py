"""No plain device id in any log of the stack (.run/logs): a device registered, heard (a good
reading and a rejected one), asked about without a key, then erased, is named in the services'
lines only by its keyed pseudonym, and by neither the broker nor PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from shared.logging import pseudonym
from tests.support import Publisher, count_readings, wait_for

pytestmark = pytest.mark.integration


def _lines_naming(logs: Path, text: str) -> list[str]:
    return [
        f"{path.name}: {line[:300]}"
        for path in sorted(logs.glob("*.log*"))
        for line in path.read_text(errors="replace").splitlines()
        if text in line
    ]


def test_a_device_leaves_no_plain_id_in_the_logs(
    api: httpx.Client, device_factory, stack_env: dict[str, str]
) -> None:
    logs = Path(stack_env["TOWNPULSE_RUN_DIR"]) / "logs"
    device = device_factory("waste", prefix="logged")
    publisher = Publisher(device)
    try:
        reading = json.dumps({"ts": datetime.now(UTC).isoformat(), "fill_pct": 40})
        publisher.publish(reading).wait_for_publish(10)
        # Rejected: the gateway logs the rejection, about this device.
        publisher.publish("not json").wait_for_publish(10)
    finally:
        publisher.close()
    wait_for(lambda: count_readings(api, device.id) == 1, timeout=60, what="the reading stored")
    # A request without a key names the device in its path: logged as its route.
    assert httpx.get(f"{stack_env['API_URL']}/v1/devices/{device.id}").status_code == 401
    r = api.delete(f"/v1/devices/{device.id}", params={"erase": "true"})
    assert r.status_code == 200, r.text

    key = (Path(stack_env["TOWNPULSE_RUN_DIR"]) / "secrets" / "log-pseudonym-key").read_bytes()
    alias = pseudonym(device.id, key.strip())

    # The rejection was logged (under the pseudonym) before the erasure's answer came back.
    def rejection_logged() -> bool:
        return bool(_lines_naming(logs, alias))

    wait_for(rejection_logged, timeout=30, what="the gateway's line about the rejection")
    assert _lines_naming(logs, device.id) == []
    assert any("401 GET /v1/devices/{device_id}" in line for line in _lines_naming(logs, "401"))
