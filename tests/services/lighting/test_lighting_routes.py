"""The lighting routes the console and open data read: every circuit's state, and the schedule,
which the service answers without a key while the operator API keeps asking one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.schemas import Reading, ReadingBatch
from shared.topics import Domain
from testing.alerts_support import produce_readings
from tests.support import RegisteredDevice, wait_for

pytestmark = pytest.mark.integration


def test_the_schedule_is_public_at_the_service_and_needs_a_key_through_the_api(
    api: httpx.Client, service_urls: dict[str, str], stack_env: dict[str, str]
) -> None:
    direct = httpx.get(f"{service_urls['lighting']}/v1/lighting/schedule", timeout=30)
    assert direct.status_code == 200, direct.text
    body = direct.json()
    # The next 31 days by default, the running or coming night first.
    start, end = (datetime.fromisoformat(body[k]) for k in ("start", "end"))
    assert end - start == timedelta(days=31)
    assert abs(start - datetime.now(UTC)) < timedelta(minutes=5)
    assert 30 <= len(body["items"]) <= 32
    assert datetime.fromisoformat(body["items"][0]["sunrise"]) > start
    anonymous = httpx.get(f"{stack_env['API_URL']}/v1/lighting/schedule", timeout=30)
    assert anonymous.status_code == 401
    assert api.get("/v1/lighting/schedule").json()["items"] == body["items"]


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"start": "2026-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "before"),
        ({"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "at most"),
        ({"start": "2026-01-01T00:00:00"}, "start"),
        ({"end": "tomorrow"}, ""),
    ],
)
def test_the_schedule_refuses_bad_periods_with_a_reason(
    api: httpx.Client, params: dict[str, str], why: str
) -> None:
    r = api.get("/v1/lighting/schedule", params=params)
    assert r.status_code == 422, r.text
    assert why in r.text


def test_every_circuit_is_listed_with_its_state(
    api: httpx.Client,
    device_factory: Callable[..., RegisteredDevice],
    stack_env: dict[str, str],
) -> None:
    lit, dark = (device_factory("lighting", prefix=f"cab{uuid.uuid4().hex[:4]}") for _ in "ab")
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    produce_readings(
        stack_env["KAFKA_BOOTSTRAP"],
        [
            ReadingBatch(
                device_id=d.id,
                domain=Domain.LIGHTING,
                received_at=ts,
                readings=[
                    Reading(ts=ts, metric="circuit_1_on", value=float(w > 0)),
                    Reading(ts=ts, metric="power_w", value=w),
                ],
            )
            for d, w in ((lit, 640.0), (dark, 0.0))
        ],
    )

    def listed() -> dict[str, dict[str, object]] | None:
        r = api.get("/v1/lighting/circuits")
        assert r.status_code == 200, r.text
        found = {
            c["device_id"]: c for c in r.json()["items"] if c["device_id"] in (lit.id, dark.id)
        }
        return found if len(found) == 2 else None

    found = wait_for(listed, timeout=60, what="both circuits")
    assert (found[lit.id]["on"], found[lit.id]["power_w"]) == (True, 640.0)
    assert (found[dark.id]["on"], found[dark.id]["power_w"]) == (False, 0.0)
    assert datetime.fromisoformat(str(found[lit.id]["ts"])) == ts
    assert api.get("/v1/lighting/circuits", params={"limit": 0}).status_code == 422
