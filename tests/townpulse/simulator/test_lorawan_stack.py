"""A small simulated town against the running stack, part of it through the ChirpStack path.

Its EM310-UDL bins and EM300-DI meters are registered by DevEUI, their uplinks pushed to the
API's ChirpStack HTTP ingest; what TownPulse stores must be what the simulator meant: each bin's
fill level (within half a millimetre of its depth) and each meter's energy per interval (within
a pulse), across the first meter's pulse counter wrapping at 2**32. With `--lorawan-raw` the
bytes alone are sent and TownPulse's own codec decodes them: its uplink rows name the codec.

Each run has its own device ids and its own integration, both removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import wait_for
from townpulse.simulator.events import STEP
from townpulse.simulator.readings import iter_readings
from townpulse.simulator.runner import RunnerConfig, run
from townpulse.simulator.town import U32, LoRaModel, Town, build_town

pytestmark = pytest.mark.integration

SIZES: dict[str, Any] = {
    "energy": 2,
    "waste": 3,
    "traffic": 1,
    "seed": 11,
    "lorawan_bins": 2 / 3,
    "lorawan_meters": 1.0,
}
HOURS = 3


@pytest.fixture
def town_ids(api: httpx.Client) -> Iterator[tuple[str, str]]:
    """A device id prefix and an integration id of this test's own; erased afterwards."""
    tag = uuid.uuid4().hex[:8]
    prefix, integration_id = f"t{tag}-", f"test-sim-{tag}"
    yield prefix, integration_id
    for device in build_town(**SIZES, id_prefix=prefix):
        api.delete(f"/v1/devices/{device.id}", params={"erase": "true"})
    api.delete(f"/v1/integrations/{integration_id}")


def _stored(
    api: httpx.Client, device_id: str, metric: str, start: datetime, end: datetime
) -> dict[datetime, float]:
    r = api.get(
        f"/v1/devices/{device_id}/readings",
        params={"metric": metric, "start": start.isoformat(), "end": end.isoformat()},
    )
    assert r.status_code == 200, r.text
    return {datetime.fromisoformat(i["ts"]): i["value"] for i in r.json()["items"]}


def _all_stored(
    api: httpx.Client, device_id: str, metric: str, start: datetime, end: datetime, *, count: int
) -> dict[datetime, float]:
    """The device's readings of `metric`, once storage holds `count` of them."""

    def ready() -> dict[datetime, float] | None:
        stored = _stored(api, device_id, metric, start, end)
        return stored if len(stored) == count else None

    found: dict[datetime, float] = wait_for(
        ready, timeout=60, what=f"{count} readings {metric} of {device_id}"
    )
    return found


@pytest.mark.parametrize("raw", [True, False], ids=["townpulse-decodes", "server-decodes"])
def test_the_simulated_town_reaches_townpulse_through_chirpstack(
    raw: bool,
    town_ids: tuple[str, str],
    api: httpx.Client,
    stack_env: dict[str, str],
    admin_key: str,
    tmp_path: Path,
) -> None:
    prefix, integration_id = town_ids
    config = RunnerConfig(
        api_url=stack_env["API_URL"],
        api_key=admin_key,
        run_dir=tmp_path,
        mqtt_host=stack_env["MQTT_HOST"],
        mqtt_port=int(stack_env["MQTT_PORT"]),
        speed=1e9,
        backfill=timedelta(hours=HOURS),
        duration=timedelta(hours=HOURS),
        lorawan_raw=raw,
        lorawan_integration=integration_id,
        id_prefix=prefix,
        **SIZES,
    )
    stats = run(config)
    town: Town = build_town(**SIZES, id_prefix=prefix)
    radios = town.lorawan
    assert [d.lorawan.model for d in radios if d.lorawan] == [LoRaModel.EM300_DI] * 2 + [
        LoRaModel.EM310_UDL
    ] * 2
    steps = HOURS * 4
    assert stats.steps == steps and stats.last_ts is not None
    assert (stats.uplinks, stats.refused, stats.duplicates) == (steps * len(radios), 0, 0)
    assert stats.published == steps * len(town)  # the MQTT bin and counter too
    start = stats.last_ts - (steps - 1) * STEP
    end = stats.last_ts + STEP
    meant = {(r.device.id, r.ts): r.metrics for r in iter_readings(town, start=start, end=end)}

    listed = {i["id"]: i for i in api.get("/v1/integrations").json()}
    assert listed[integration_id]["kind"] == "chirpstack"
    assert listed[integration_id]["transport"] == "http"

    for device in radios:
        assert device.lorawan is not None
        registered = api.get(f"/v1/devices/{device.id}").json()
        assert registered["dev_eui"] == device.lorawan.dev_eui
        assert registered["profile"] == device.lorawan.model.profile
        if device.lorawan.model is LoRaModel.EM310_UDL:
            depth = registered["metadata"]["bin_depth_mm"]
            fills = _all_stored(api, device.id, "fill_pct", start, end, count=steps)
            for ts, value in fills.items():
                expected = min(100.0, max(0.0, meant[(device.id, ts)]["fill_pct"]))
                assert value == pytest.approx(expected, abs=50.0 / depth * 1.001), ts
        else:
            per_pulse = registered["metadata"]["kwh_per_pulse"]
            # The first uplink gives the count only: an interval needs two.
            energies = _all_stored(api, device.id, "energy_kwh", start, end, count=steps - 1)
            for ts, value in energies.items():
                expected = meant[(device.id, ts)]["energy_kwh"]
                assert value == pytest.approx(expected, abs=per_pulse * 1.001), ts
            counts = _stored(api, device.id, "pulse_count", start, end)
            assert len(counts) == steps and all(0 <= c < U32 for c in counts.values())
            times = sorted(counts)
            ordered = [counts[ts] for ts in times]
            wrapped = any(b < a for a, b in pairwise(ordered))
            # The town's first counter starts 5,000 pulses short of 2**32: it wraps in here when
            # the town hall used that much in the window (by day; a night's may not).
            used = sum(meant[(device.id, ts)]["energy_kwh"] for ts in times[1:]) / per_pulse
            if abs(ordered[0] + used - U32) > 2:
                should = device is radios[0] and ordered[0] + used > U32
                assert wrapped is should, (device.id, ordered[0], used)

        uplinks = api.get(f"/v1/devices/{device.id}/uplinks", params={"limit": 100}).json()
        assert len(uplinks) == steps
        assert [u["f_cnt"] for u in sorted(uplinks, key=lambda u: u["ts"])] == list(range(steps))
        assert {u["source"] for u in uplinks} == {"chirpstack"}
        codec = device.lorawan.model.profile if raw else None
        assert {u["codec"] for u in uplinks} == {codec}
        assert all(u["rssi"] is not None and u["gateways"] >= 1 for u in uplinks)

    # The bin left on MQTT still reports as before, with its temperature.
    mqtt_bin = next(d for d in town if d.domain.value == "waste" and d.lorawan is None)
    _all_stored(api, mqtt_bin.id, "temperature_c", start, end, count=steps)
