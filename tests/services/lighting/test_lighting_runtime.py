"""The lighting service on the real stack: a SIGKILL changes nothing in what it derives. The
oracle is the same processor, with the service's default settings, run here uninterrupted on the
same readings."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.lighting.domain.circuit import LightingProcessor, LightingRow
from services.lighting.settings import LightingSettings
from shared.schemas import Reading, ReadingBatch
from shared.topics import READINGS_TOPICS, Domain
from tests.runtime_support import (
    Key,
    Series,
    assert_stored_once,
    interleave,
    oracle,
    produce,
    stored,
)
from tests.support import wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.e2e

TOPIC = READINGS_TOPICS[Domain.LIGHTING]
STEP = timedelta(minutes=15)
FULL_W = 800.0
N = 4 * 96  # four days: levels learnt the first night, a lamp out in the third


def _settings() -> LightingSettings:
    return LightingSettings(dev_mode=True)


def _series(device_id: str, *, start: datetime, n: int, phase: float) -> list[ReadingBatch]:
    """A cabinet lit from sunset to sunrise in the service's default town, drawing a little
    more with `phase`, one lamp out from the middle of its third night."""
    town = _settings().town()
    plan = town.plan(town.local(start + timedelta(days=2)).date())
    fail_at = None if plan is None else plan.dusk + (plan.dawn - plan.dusk) / 2
    full = FULL_W * (1 + phase / 4)
    lamp = _settings().lighting_lamp_w
    out = []
    for i in range(n):
        ts = start + i * STEP
        on = town.night(ts)
        watts = 0.0
        if on:
            watts = full + 2 * math.sin(i) - (lamp if fail_at and ts >= fail_at else 0.0)
        readings = [
            Reading(ts=ts, metric="power_w", value=round(watts, 2)),
            Reading(ts=ts, metric="energy_kwh", value=round(watts * 0.25 / 1000, 6)),
            Reading(ts=ts, metric="voltage_v", value=230.0),
            Reading(ts=ts, metric="circuit_1_on", value=float(on)),
        ]
        out.append(
            ReadingBatch(
                device_id=device_id,
                domain=Domain.LIGHTING,
                received_at=datetime.now(UTC),
                readings=readings,
            )
        )
    return out


SQL = (
    "SELECT device_id, ts, is_on, power_w, expected_w, baseline_kwh, kind FROM lighting_readings "
    "WHERE device_id = ANY(%s)"
)


def processor() -> LightingProcessor:
    s = _settings()
    return LightingProcessor(town=s.town(), lamp_w=s.lighting_lamp_w)


def _oracle(series: Series) -> dict[Key, tuple[Any, ...]]:
    return oracle(
        processor(),
        series,
        row_type=LightingRow,
        values=lambda r: (r.is_on, r.power_w, r.expected_w, r.baseline_kwh, r.kind),
    )


def test_sigkill_and_restart_give_exactly_the_uninterrupted_outputs(
    stack: Stack, stack_env: dict[str, str], api: httpx.Client
) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=5)
    names = [f"lc-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    series = {d: _series(d, start=start, n=N, phase=k / 5) for k, d in enumerate(names)}
    ids = list(series)
    db, kafka = stack_env["DATABASE_URL"], stack_env["KAFKA_BOOTSTRAP"]

    produce(kafka, TOPIC, interleave(series, 0, N // 2))
    wait_for(lambda: len(stored(db, SQL, ids)) >= 300, timeout=120, what="part of the first half")
    stack.kill("lighting")  # mid-stream, possibly mid-batch
    produce(kafka, TOPIC, interleave(series, N // 2, N))
    stack.restart_service("lighting")

    expected = _oracle(series)
    assert_stored_once(db, SQL, ids, expected, timeout=180, what="every report processed once")
    assert any(kind == "lighting.lamp_failure" for *_, kind in expected.values())
    r = api.get(f"/v1/lighting/circuits/{ids[0]}")
    assert r.status_code == 200, r.text
    assert [f["kind"] for f in r.json()["faults"]] == ["lighting.lamp_failure"]
