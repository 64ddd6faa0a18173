"""The simulated LoRaWAN devices: their bytes read back by the vendors' own codecs, the shipped
profiles turning them into the readings the simulator meant, and the ChirpStack events parsed by
ChirpStack's own message classes and by the gateway."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chirpstack_api import integration
from google.protobuf import json_format

from services.gateway.ingest import chirpstack
from services.gateway.ingest.codec import CodecSandbox, load_repository_codec
from services.gateway.ingest.profile import (
    MemoryCounters,
    Profile,
    map_fields,
    parse_profile,
    shipped_profiles,
)
from services.gateway.ingest.rejection import Limits
from townpulse.simulator.events import STEP
from townpulse.simulator.lorawan import (
    APPLICATION_ID,
    F_PORT,
    Cursor,
    LoRaWanDevice,
    Radio,
    em300_object,
    em310_object,
    encode_em300,
    encode_em310,
    event_body,
    radio,
    uplink_event,
)
from townpulse.simulator.readings import iter_readings
from townpulse.simulator.town import U32, Device, LoRaModel, build_town
from townpulse.stack import REPO

pytestmark = pytest.mark.unit

REPOSITORY = Path(
    os.environ.get(
        "TOWNPULSE_DEVICE_REPOSITORY", REPO.parent / "shared" / "data" / "lorawan-devices"
    )
)
T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def codecs() -> dict[LoRaModel, CodecSandbox]:
    """The vendors' codecs from the Device Repository copy, in TownPulse's sandbox."""
    return {
        model: CodecSandbox(load_repository_codec(REPOSITORY, model.value).script)
        for model in LoRaModel
    }


@pytest.fixture(scope="module")
def profiles() -> dict[LoRaModel, Profile]:
    by_name = {doc["name"]: doc for doc in shipped_profiles()}
    return {model: parse_profile(by_name[model.profile]) for model in LoRaModel}


def _decode(sandbox: CodecSandbox, payload: bytes) -> dict[str, Any]:
    return sandbox.decode(payload, f_port=F_PORT, recv_time=T0).data


@pytest.mark.parametrize(
    ("distance", "battery", "tilted"),
    [(0, 100, False), (365, 92, False), (1000, 5, True), (2116, 92, True), (65535, 0, False)],
)
def test_em310_bytes_decode_to_what_was_encoded(
    codecs: dict[LoRaModel, CodecSandbox], distance: int, battery: int, tilted: bool
) -> None:
    payload = encode_em310(distance_mm=distance, battery_pct=battery, tilted=tilted)
    decoded = _decode(codecs[LoRaModel.EM310_UDL], payload)
    assert decoded == em310_object(distance_mm=distance, battery_pct=battery, tilted=tilted)
    assert decoded == {
        "battery": battery,
        "distance": distance,
        "tilt": "tilt" if tilted else "normal",
    }


def test_em310_refuses_what_the_device_cannot_send() -> None:
    with pytest.raises(ValueError, match="uint16"):
        encode_em310(distance_mm=65536, battery_pct=50)
    with pytest.raises(ValueError, match="battery"):
        encode_em310(distance_mm=10, battery_pct=101)


@pytest.mark.parametrize(
    ("pulses", "on_the_wire"),
    [
        (0, 0),
        (256, 256),
        (2**31, 2**31),  # the codec's `(x & 0xffffffff) >>> 0` keeps it unsigned
        (U32 - 1, U32 - 1),
        (U32, 0),  # the counter wraps
        (U32 + 1234, 1234),
    ],
)
def test_em300_pulse_counts_decode_as_uint32(
    codecs: dict[LoRaModel, CodecSandbox], pulses: int, on_the_wire: int
) -> None:
    decoded = _decode(codecs[LoRaModel.EM300_DI], encode_em300(pulses=pulses, battery_pct=77))
    assert decoded == {"battery": 77, "pulse": on_the_wire}
    assert decoded == em300_object(pulses=pulses, battery_pct=77)


def test_bins_through_codec_and_profile_give_the_simulated_fill(
    codecs: dict[LoRaModel, CodecSandbox], profiles: dict[LoRaModel, Profile]
) -> None:
    town = build_town(energy=0, waste=8, traffic=0, seed=5, lorawan_bins=1.0)
    devices = {d.id: LoRaWanDevice(d, seed=5) for d in town}
    readings = list(iter_readings(town, start=T0, end=T0 + timedelta(days=2), glitch_rate=0.01))
    assert {r.metrics["fill_pct"] for r in readings} >= {0.0, 100.0}  # glitches included
    counters = MemoryCounters()
    for reading in readings:
        device = devices[reading.device.id]
        frame = device.frame(reading.ts, reading.metrics)
        assert frame is not None
        decoded = _decode(codecs[LoRaModel.EM310_UDL], frame.payload)
        assert decoded == frame.decoded
        mapped = map_fields(
            profiles[LoRaModel.EM310_UDL],
            decoded,
            device_id=reading.device.id,
            ts=reading.ts,
            metadata=reading.device.metadata,
            counters=counters,
        )
        fill = next(r.value for r in mapped if r.metric == "fill_pct")
        depth = reading.device.metadata["bin_depth_mm"]
        # Whole millimetres: half a millimetre of the bin's depth at most.
        assert fill == pytest.approx(reading.metrics["fill_pct"], abs=50.0 / depth * 1.001)


def test_meters_through_codec_and_profile_give_the_simulated_energy_across_the_wrap(
    codecs: dict[LoRaModel, CodecSandbox], profiles: dict[LoRaModel, Profile]
) -> None:
    town = build_town(energy=4, waste=0, traffic=0, seed=5, lorawan_meters=1.0)
    assert [d.lorawan.kwh_per_pulse for d in town if d.lorawan] == [0.001, 0.0005] * 2
    devices = {d.id: LoRaWanDevice(d, seed=5) for d in town}
    counters = MemoryCounters()
    counts: dict[str, list[int]] = {d.id: [] for d in town}
    intervals = 0
    for reading in iter_readings(town, start=T0, end=T0 + timedelta(days=1)):
        frame = devices[reading.device.id].frame(reading.ts, reading.metrics)
        assert frame is not None
        decoded = _decode(codecs[LoRaModel.EM300_DI], frame.payload)
        assert decoded == frame.decoded
        counts[reading.device.id].append(decoded["pulse"])
        mapped = {
            r.metric: r.value
            for r in map_fields(
                profiles[LoRaModel.EM300_DI],
                decoded,
                device_id=reading.device.id,
                ts=reading.ts,
                metadata=reading.device.metadata,
                counters=counters,
            )
        }
        if "energy_kwh" in mapped:
            intervals += 1
            per_pulse = reading.device.metadata["kwh_per_pulse"]
            # Whole pulses, the remainder carried to the next interval: within one pulse.
            assert mapped["energy_kwh"] == pytest.approx(
                reading.metrics["energy_kwh"], abs=per_pulse * 1.001
            )
    assert intervals == 4 * (24 * 4 - 1)  # every uplink but each meter's first
    first = counts["meter-001"]
    assert first[0] > U32 - 5_000 and min(first) < 100_000  # it wrapped, and nothing noticed


def test_a_device_resumes_from_its_cursor() -> None:
    meter = build_town(energy=1, waste=0, traffic=0, lorawan_meters=1.0).get("meter-001")
    last = T0 + 2 * STEP
    device = LoRaWanDevice(meter, seed=1, cursor=Cursor(last_ts=last, f_cnt=41, pulses=U32 - 3))
    assert device.uplink(last, {"energy_kwh": 1.0}, with_object=True) is None  # already stored
    event = device.uplink(last + STEP, {"energy_kwh": 0.0125}, with_object=True)
    assert event is not None
    assert event["fCnt"] == 42
    assert event["object"]["pulse"] == 9  # U32 - 3 + 12 whole pulses, wrapped
    later = device.uplink(last + 3 * STEP, {"energy_kwh": 0.0005}, with_object=True)
    assert later is not None
    assert later["fCnt"] == 44  # one a quarter hour, even across a silent one
    assert later["object"]["pulse"] == 10  # 0.5 + 0.5 pulses carried


def test_a_device_never_heard_joins_with_frame_counter_zero() -> None:
    bin_ = build_town(energy=0, waste=1, traffic=0, lorawan_bins=1.0).get("bin-001")
    device = LoRaWanDevice(bin_, seed=1)
    counters = [
        event["fCnt"]
        for i in range(3)
        if (event := device.uplink(T0 + i * STEP, {"fill_pct": 40.0}, with_object=False))
    ]
    assert counters == [0, 1, 2]


def _event(*, with_object: bool, gateways: int = 2) -> tuple[dict[str, Any], Device, bytes]:
    bin_ = build_town(energy=0, waste=2, traffic=0, lorawan_bins=1.0).get("bin-002")
    frame = LoRaWanDevice(bin_, seed=3).frame(T0, {"fill_pct": 40.0})
    assert frame is not None
    event = uplink_event(
        bin_,
        frame,
        ts=T0,
        f_cnt=1234,
        dedup_id="3b7e5f44-7d2a-4f0e-9c55-1e2f3a4b5c6d",
        link=Radio(rssi=-97, snr=-6.5, dr=4, gateways=gateways, channel=5),
        with_object=with_object,
    )
    return event, bin_, frame.payload


def _normalised(value: Any, key: str = "") -> Any:
    """An event with its zero values left out (ChirpStack leaves them out of `rxInfo` and
    `txInfo`, protobuf prints them) and its times as instants (protobuf writes `Z` where
    ChirpStack writes `+00:00`)."""
    if isinstance(value, dict):
        out = {k: _normalised(v, k) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [], 0, False, "")}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if key in ("time", "nsTime"):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


@pytest.mark.parametrize("with_object", [True, False])
def test_the_event_parses_with_chirpstacks_own_message_classes(with_object: bool) -> None:
    event, bin_, payload = _event(with_object=with_object)
    body = event_body(event)
    # Parse refuses unknown fields and values of the wrong type.
    message = json_format.Parse(body, integration.UplinkEvent())
    assert bin_.lorawan is not None
    assert message.device_info.dev_eui == bin_.lorawan.dev_eui
    assert message.device_info.application_id == APPLICATION_ID
    assert message.time.ToDatetime(tzinfo=UTC) == T0
    assert (message.f_cnt, message.f_port, message.dr) == (1234, F_PORT, 4)
    assert message.data == payload
    assert message.HasField("object") is with_object
    assert [(rx.rssi, rx.snr) for rx in message.rx_info] == [(-97, -6.5), (-101, -8.0)]
    assert message.tx_info.frequency == 867_500_000  # channel 5
    assert message.tx_info.modulation.lora.spreading_factor == 8
    # Nothing was lost or changed on the way: printed back, it is the event we built.
    back = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    assert _normalised(back) == _normalised(event)
    assert json_format.Parse(json.dumps(back), integration.UplinkEvent()) == message


@pytest.mark.parametrize("with_object", [True, False])
def test_the_gateway_reads_the_event(with_object: bool) -> None:
    event, bin_, payload = _event(with_object=with_object, gateways=3)
    uplink = chirpstack.parse_uplink(
        event_body(event), received_at=T0 + timedelta(seconds=1), limits=Limits()
    )
    assert bin_.lorawan is not None
    assert uplink.device_key == bin_.lorawan.dev_eui
    assert uplink.application == APPLICATION_ID
    assert uplink.time == T0  # the reading's time, not the arrival's
    assert (uplink.f_cnt, uplink.f_port, uplink.payload) == (1234, F_PORT, payload)
    assert uplink.decoded == (event["object"] if with_object else None)
    assert (uplink.link.rssi, uplink.link.snr, uplink.link.gateways) == (-97, -6.5, 3)
    assert uplink.dedup_id == event["deduplicationId"]


def test_each_uplink_gets_its_own_deduplication_id_and_base64_bytes() -> None:
    bin_ = build_town(energy=0, waste=1, traffic=0, lorawan_bins=1.0).get("bin-001")
    device = LoRaWanDevice(bin_, seed=1)
    first = device.uplink(T0, {"fill_pct": 10.0}, with_object=True)
    second = device.uplink(T0 + STEP, {"fill_pct": 10.0}, with_object=True)
    assert first is not None and second is not None
    assert first["deduplicationId"] != second["deduplicationId"]
    assert base64.b64decode(first["data"]) == encode_em310(
        distance_mm=first["object"]["distance"], battery_pct=first["object"]["battery"]
    )


def test_radio_links_are_plausible_and_stable() -> None:
    town = build_town(energy=10, waste=30, traffic=0, lorawan_bins=1.0, lorawan_meters=1.0)
    links = [radio(d, f_cnt=n, seed=42) for d in town for n in range(20)]
    assert links == [radio(d, f_cnt=n, seed=42) for d in town for n in range(20)]
    assert all(-126 <= r.rssi <= -70 and -20 <= r.snr <= 11 for r in links)
    # ADR: weak links are slowed down; the spread covers several data rates and gateway counts.
    assert 5 in {r.dr for r in links} and len({r.dr for r in links}) >= 3
    assert {r.gateways for r in links} == {1, 2, 3}
    for r in links:
        assert r.dr == 5 or r.snr < -5.0
