"""A checkpoint the service did not sign is never unpickled: the model starts fresh, an alert
says so (shared/runtime/checkpoints.py). Against the running energy service, with rows written
as the database's superuser, as an attacker holding the database would."""

from __future__ import annotations

import os
import pickle
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from services.energy.domain.meter import EnergyProcessor
from shared.runtime.checkpoints import CheckpointKey
from shared.runtime.worker import CHECKPOINT_REFUSED
from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from testing.alerts_support import produce_readings
from tests.support import wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.integration


class _Payload:
    """Unpickling this creates a file: proof that the bytes reached pickle.loads."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("forgery", ["unsigned", "other-key"])
def test_a_checkpoint_not_signed_by_the_service_is_refused_with_an_alert(
    api: httpx.Client,
    stack: Stack,
    stack_env: dict[str, str],
    device_factory,
    tmp_path: Path,
    forgery: str,
) -> None:
    device = device_factory("energy")
    marker = tmp_path / f"unpickled-{uuid.uuid4().hex[:8]}"
    state = pickle.dumps(_Payload(marker))
    version = EnergyProcessor().model_version
    mac = (
        None
        if forgery == "unsigned"
        # A plausible HMAC under a key that is not the service's.
        else CheckpointKey(os.urandom(32)).sign(
            group_id="energy", device_id=device.id, model_version=version, applied=0, state=state
        )
    )
    with psycopg.connect(stack.superuser_url("townpulse")) as conn:
        conn.execute(
            "INSERT INTO runtime_state (group_id, device_id, model_version, state, state_mac,"
            " applied_offset) VALUES ('energy', %s, %s, %s, %s, 0)",
            (device.id, version, state, mac),
        )
    # The service loads a device's checkpoint when it first sees the device (as after a
    # restart): one reading brings it in.
    now = datetime.now(UTC)
    produce_readings(
        stack_env["KAFKA_BOOTSTRAP"],
        [
            ReadingBatch(
                device_id=device.id,
                domain=Domain.ENERGY,
                received_at=now,
                readings=[
                    Reading(ts=now - timedelta(minutes=15 * k), metric="energy_kwh", value=1.0)
                    for k in range(4, 0, -1)
                ],
            )
        ],
    )

    def alert() -> list[dict[str, object]]:
        r = api.get("/v1/alerts", params={"device_id": device.id, "kind": CHECKPOINT_REFUSED})
        assert r.status_code == 200, r.text
        return list(r.json())

    alerts = wait_for(alert, timeout=60, what="the refused checkpoint's alert")
    assert alerts[0]["severity"] == "critical"
    assert not marker.exists(), "the forged checkpoint was unpickled"
