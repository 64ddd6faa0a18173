"""A device's model state, as the console's device page reads it: "new" before any checkpoint,
"learning" (until about when) while it warms up, "calibrated" after; against the real stack.

The checkpoint rows are written here as a domain service writes them (runtime_state, its
`learning_until` column); the API must report exactly what the table holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support import RegisteredDevice
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

GROUP = "test-device-model"


def _sql(stack: Stack, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(stack.database_url(), autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def checkpoint(stack: Stack) -> Iterator[Callable[[str, datetime | None], None]]:
    saved: list[str] = []

    def save(device_id: str, until: datetime | None) -> None:
        _sql(
            stack,
            "INSERT INTO runtime_state (group_id, device_id, model_version, state, learning_until)"
            " VALUES (%s, %s, 'test', '\\x00', %s) ON CONFLICT (group_id, device_id)"
            " DO UPDATE SET learning_until = EXCLUDED.learning_until",
            (GROUP, device_id, until),
        )
        saved.append(device_id)

    yield save
    _sql(stack, "DELETE FROM runtime_state WHERE group_id = %s", (GROUP,))


def test_the_model_is_new_then_learning_then_calibrated(
    api: httpx.Client,
    stack: Stack,
    device_factory: Callable[..., RegisteredDevice],
    checkpoint: Callable[[str, datetime | None], None],
) -> None:
    device = device_factory("energy")
    url = f"/v1/devices/{device.id}/model"
    assert api.get(url).json() == {"device_id": device.id, "state": "new", "learning_until": None}

    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=9)
    checkpoint(device.id, until)
    (row,) = _sql(
        stack, "SELECT learning_until FROM runtime_state WHERE device_id = %s", (device.id,)
    )
    body = api.get(url).json()
    assert body["state"] == "learning"
    assert datetime.fromisoformat(body["learning_until"]) == row["learning_until"]

    checkpoint(device.id, None)
    assert api.get(url).json()["state"] == "calibrated"


def test_an_unknown_device_has_no_model(api: httpx.Client) -> None:
    r = api.get("/v1/devices/no-such-device-model/model")
    assert r.status_code == 404
    assert r.json()["detail"] == "no such device"
