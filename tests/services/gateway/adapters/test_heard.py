"""What 'heard, not registered' writes: bounded per key and per second (a fake pool counts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from services.gateway.adapters.db import HeardDevices
from services.gateway.ingest.uplink import Uplink

pytestmark = pytest.mark.unit


class CountingPool:
    def __init__(self) -> None:
        self.keys: list[str] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[CountingPool]:
        yield self

    async def execute(self, sql: str, params: dict[str, Any]) -> None:
        self.keys.append(params["k"])


def _uplink(key: str) -> Uplink:
    return Uplink(source="chirpstack", device_key=key, time=datetime.now(UTC), payload=b"\x01")


async def test_a_chatty_stranger_is_written_once_and_a_flood_is_capped() -> None:
    pool = CountingPool()
    heard = HeardDevices(cast(Any, pool), every_s=60, per_second=5)
    for _ in range(10):
        await heard.heard(_uplink("0102030405060708"), source="cs")
    assert pool.keys == ["0102030405060708"]
    for i in range(100):  # invented DevEUIs, all within one second
        await heard.heard(_uplink(f"{i:016x}"), source="cs")
    # Five a second: at most two seconds' worth even if the loop crossed a second.
    assert len(pool.keys) <= 1 + 2 * 5
