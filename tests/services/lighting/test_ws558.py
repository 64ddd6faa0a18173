"""The WS558 light controller's official test vectors become lighting readings and rows.

The codec and its examples are the TTN Device Repository's (../shared/data/lorawan-devices,
vendor/milesight-iot/ws558.js and ws558-codec.yaml), referenced by path; the profile is the one
the gateway ships. Expected values are read off the vectors' decoded output and the profile's
arithmetic, not from the code under test.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.gateway.ingest.codec import CodecSandbox, load_repository_codec
from services.gateway.ingest.profile import (
    MemoryCounters,
    map_fields,
    parse_profile,
    shipped_profiles,
)
from services.lighting.domain.circuit import LightingProcessor, LightingRow
from shared.night import Town
from shared.topics import Domain

pytestmark = pytest.mark.unit

REPOSITORY = Path(
    os.environ.get(
        "TOWNPULSE_DEVICE_REPOSITORY",
        Path(__file__).resolve().parents[3].parent / "shared" / "data" / "lorawan-devices",
    )
)
T0 = datetime(2026, 12, 7, 20, tzinfo=UTC)  # 21:00 in Paris: night


def test_the_ws558_profile_makes_lighting_readings_of_the_official_vectors() -> None:
    codec = load_repository_codec(REPOSITORY, "milesight-iot/ws558")
    (doc,) = [d for d in shipped_profiles() if d.get("codec") == codec.name]
    profile = parse_profile(doc)
    assert profile.domain is Domain.LIGHTING
    sandbox = CodecSandbox(codec.script)
    counters = MemoryCounters()
    counters.remember("ws558-1", "energy_total_wh", 1000.0)  # the previous uplink's total
    frames: list[tuple[int | None, bytes | None]] = [(e.f_port, e.bytes) for e in codec.examples]
    frames += [(e.f_port, e.payload) for e in profile.examples]  # circuits, power (own frame)
    messages = []
    for i, (f_port, payload) in enumerate(frames):
        assert f_port is not None and payload is not None
        ts = T0 + i * timedelta(minutes=15)
        decoded = sandbox.decode(payload, f_port=f_port, recv_time=ts)
        messages.append(
            map_fields(
                profile, decoded.data, device_id="ws558-1", ts=ts, metadata={}, counters=counters
            )
        )
    # Official example 1: 222.6 V. Example 2: 1110 Wh cumulated, 0.11 kWh since 1000 Wh.
    assert [(r.metric, r.value) for r in messages[0]] == [("voltage_v", 222.6)]
    energy = {r.metric: r.value for r in messages[1]}
    assert energy["energy_kwh"] == pytest.approx(0.11)

    proc = LightingProcessor(town=Town(latitude=48.8566, longitude=2.3522, zone="Europe/Paris"))
    state = proc.new_state("ws558-1")
    rows = [
        r
        for msg in messages
        for r in proc.process(state, device_id="ws558-1", readings=msg).rows
        if isinstance(r, LightingRow)
    ]
    assert [r.voltage_v for r in rows] == [222.6, None, 222.6]
    assert rows[1].energy_kwh == pytest.approx(0.11)
    # The own frame: circuits 1 and 3 on, 300 W; the first two frames say no circuit is on
    # and draw nothing (a frame without power or circuits is off).
    assert [r.is_on for r in rows] == [False, False, True]
    assert rows[2].power_w == 300.0
