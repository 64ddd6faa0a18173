"""The consumers' fetch settings: a fill time makes the broker wait for a batch worth a
transaction; without one it answers at the first record."""

from __future__ import annotations

import pytest

from services.alerts.settings import AlertsSettings
from services.storage.settings import StorageSettings
from shared.kafka import FILL_BYTES, create_consumer
from shared.settings import StreamServiceSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("fill_ms", "min_bytes", "max_wait_ms"), [(0, 1, 500), (100, FILL_BYTES, 100)]
)
async def test_the_fill_time_reaches_the_consumers_fetches(
    fill_ms: int, min_bytes: int, max_wait_ms: int
) -> None:
    consumer = create_consumer(
        "readings.energy", bootstrap="127.0.0.1:1", group_id="g", client_id="c", fill_ms=fill_ms
    )
    try:
        # aiokafka keeps its fetch settings as given until start(), not called here.
        assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (min_bytes, max_wait_ms)
    finally:
        await consumer.stop()


@pytest.mark.parametrize("settings", [AlertsSettings, StorageSettings, StreamServiceSettings])
def test_every_consumer_fills_its_batches_by_default_and_the_setting_is_bounded(
    settings: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOWNPULSE_DEV_MODE", "1")
    assert settings().batch_fill_ms == 100
    monkeypatch.setenv("TOWNPULSE_BATCH_FILL_MS", "0")
    assert settings().batch_fill_ms == 0
    monkeypatch.setenv("TOWNPULSE_BATCH_FILL_MS", "5000")
    with pytest.raises(ValueError, match="batch_fill_ms"):
        settings()
