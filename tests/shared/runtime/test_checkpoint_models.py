"""A checkpoint written by another model (class, version, parameters) is not restored into the
model a town now runs: the runtime starts that device afresh with the new model and learns on;
a checkpoint of the same model comes back unchanged. On the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY
from pydantic import SecretStr

from services.energy.adapters.db import write_rows as energy_rows
from services.energy.domain.meter import EnergyProcessor
from services.waste.adapters.db import write_rows as waste_rows
from services.waste.domain.bin import WasteProcessor
from shared.db import create_pool
from shared.ml.registry import ModelSpec
from shared.ml.timed import TimedForecaster
from shared.ml.weekly import WeeklyProfile
from shared.runtime.worker import DeviceRuntime, DeviceSlot
from shared.schemas import Reading
from tests.runtime_support import TEST_CHECKPOINT_KEY

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, tzinfo=UTC)
TP = TopicPartition("test.checkpoints", 0)
SNARIMAX = ModelSpec(path="river.time_series.SNARIMAX", params={"p": 2, "d": 0, "q": 1})
TREE = ModelSpec(path="river.tree.HoeffdingTreeRegressor", params={"leaf_prediction": "mean"})


def _runtime(processor: Any, *, pool: Any, group: str, sink: Any) -> DeviceRuntime[Any]:
    # Only the checkpoint methods are exercised: no stream, so no offsets store.
    return DeviceRuntime(
        processor=processor,
        sink=sink,
        pool=pool,
        offsets=None,  # type: ignore[arg-type]
        group_id=group,
        checkpoint_key=TEST_CHECKPOINT_KEY,
    )


async def _restored(
    old: Any, new: Any, *, metric: str, sink: Any, env: dict[str, str]
) -> tuple[Any, Any, float]:
    """A state learnt by `old`, checkpointed; what a runtime running `new` loads for it."""
    pool = create_pool(SecretStr(env["DATABASE_URL"]), max_size=2)
    await pool.open()
    group, device = f"ckpt-{uuid.uuid4().hex[:8]}", f"dev-{uuid.uuid4().hex[:8]}"
    try:
        writer = _runtime(old, pool=pool, group=group, sink=sink)
        state = old.new_state(device)
        readings = [
            Reading(ts=T0 + timedelta(minutes=15 * i), metric=metric, value=5.0 + i % 40)
            for i in range(300)
        ]
        old.process(state, device_id=device, readings=readings)
        writer.cache[device] = DeviceSlot(
            state=state, clock=readings[-1].ts, partition=TP, applied=7
        )
        async with pool.connection() as conn, conn.transaction():
            await writer._save_states(conn, [device])

        reader = _runtime(new, pool=pool, group=group, sink=sink)
        await reader._load_missing({device: TP})
        discarded = REGISTRY.get_sample_value(
            "townpulse_runtime_discarded_checkpoints_total", {"group": group}
        )
        return state, reader.cache[device].state, discarded or 0.0
    finally:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM runtime_state WHERE group_id = %s", (group,))
        await pool.close()


def test_waste_checkpoint_of_another_fill_model_is_not_restored(stack_env: dict[str, str]) -> None:
    old, new = WasteProcessor(), WasteProcessor(fill_model=TREE)
    learnt, loaded, discarded = asyncio.run(
        _restored(old, new, metric="fill_pct", sink=waste_rows, env=stack_env)
    )
    assert isinstance(learnt.rates, WeeklyProfile) and learnt.rate_samples > 0
    assert discarded == 1
    assert type(loaded.rates).__name__ == "Pipeline"  # the new model, fresh
    assert loaded.rate_samples == 0 and loaded.level is None
    # The fresh state learns on with the new model.
    effects = new.process(
        loaded,
        device_id="d",
        readings=[Reading(ts=T0 + timedelta(days=5), metric="fill_pct", value=30.0)],
    )
    assert effects.rows and loaded.level == 30.0


def test_energy_checkpoint_of_another_forecaster_is_not_restored(
    stack_env: dict[str, str],
) -> None:
    old, new = EnergyProcessor(), EnergyProcessor(forecaster=SNARIMAX)
    _, loaded, discarded = asyncio.run(
        _restored(old, new, metric="energy_kwh", sink=energy_rows, env=stack_env)
    )
    assert discarded == 1
    assert isinstance(loaded.forecaster, TimedForecaster) and loaded.forecaster.last_ts is None
    assert loaded.detector.seen == 0


def test_a_checkpoint_of_the_same_model_is_restored_unchanged(stack_env: dict[str, str]) -> None:
    learnt, loaded, discarded = asyncio.run(
        _restored(
            WasteProcessor(fill_model=TREE),
            WasteProcessor(fill_model=TREE),
            metric="fill_pct",
            sink=waste_rows,
            env=stack_env,
        )
    )
    assert discarded == 0
    assert loaded.rate_samples == learnt.rate_samples > 0
    # Restored, it goes on exactly as the model that was never checkpointed.
    more = [
        Reading(ts=T0 + timedelta(days=4, minutes=15 * i), metric="fill_pct", value=10.0 + i)
        for i in range(40)
    ]
    proc = WasteProcessor(fill_model=TREE)
    assert (
        proc.process(loaded, device_id="d", readings=more).rows
        == proc.process(learnt, device_id="d", readings=more).rows
    )
