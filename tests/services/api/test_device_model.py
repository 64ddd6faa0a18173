"""A device's model state, as the console's device page reads it: "new" before any checkpoint,
"learning" (until about when, and what of it still warms up) while it warms up, "calibrated"
after; against the real stack.

The checkpoint rows are written here as a domain service writes them (runtime_state, its
`learning_until` and `warming` columns); the API must report exactly what the table holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.support import RegisteredDevice
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

GROUP = "test-device-model"


def _sql(stack: Stack, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(stack.database_url(), autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def checkpoint(stack: Stack) -> Iterator[Callable[..., None]]:
    saved: list[str] = []

    def save(device_id: str, until: datetime | None, warming: dict[str, str] | None = None) -> None:
        _sql(
            stack,
            "INSERT INTO runtime_state"
            " (group_id, device_id, model_version, state, learning_until, warming)"
            " VALUES (%s, %s, 'test', '\\x00', %s, %s) ON CONFLICT (group_id, device_id)"
            " DO UPDATE SET learning_until = EXCLUDED.learning_until,"
            " warming = EXCLUDED.warming",
            (GROUP, device_id, until, None if warming is None else Jsonb(warming)),
        )
        saved.append(device_id)

    yield save
    _sql(stack, "DELETE FROM runtime_state WHERE group_id = %s", (GROUP,))


def test_the_model_is_new_then_learning_then_calibrated(
    api: httpx.Client,
    stack: Stack,
    device_factory: Callable[..., RegisteredDevice],
    checkpoint: Callable[..., None],
) -> None:
    device = device_factory("energy")
    url = f"/v1/devices/{device.id}/model"
    assert api.get(url).json() == {
        "device_id": device.id,
        "state": "new",
        "learning_until": None,
        "warming": {},
    }

    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=9)
    checkpoint(device.id, until)
    (row,) = _sql(
        stack, "SELECT learning_until FROM runtime_state WHERE device_id = %s", (device.id,)
    )
    body = api.get(url).json()
    assert body["state"] == "learning"
    assert datetime.fromisoformat(body["learning_until"]) == row["learning_until"]

    # The band is warm, the level watch waits: still learning, and it says which part.
    level = (datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)).isoformat()
    checkpoint(device.id, None, {"level_watch": level})
    (row,) = _sql(stack, "SELECT warming FROM runtime_state WHERE device_id = %s", (device.id,))
    body = api.get(url).json()
    assert body["state"] == "learning" and body["learning_until"] is None
    assert {k: datetime.fromisoformat(v) for k, v in body["warming"].items()} == {
        k: datetime.fromisoformat(v) for k, v in row["warming"].items()
    }

    checkpoint(device.id, None)
    assert api.get(url).json() == {
        "device_id": device.id,
        "state": "calibrated",
        "learning_until": None,
        "warming": {},
    }


def test_an_unknown_device_has_no_model(api: httpx.Client) -> None:
    r = api.get("/v1/devices/no-such-device-model/model")
    assert r.status_code == 404
    assert r.json()["detail"] == "no such device"
