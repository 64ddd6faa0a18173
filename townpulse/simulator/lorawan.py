"""The town's LoRaWAN devices: the bytes they send and the events a ChirpStack server makes of them.

Bins with a Milesight EM310-UDL (ultrasonic distance in the lid) and meters read by a Milesight
EM300-DI (pulse counter on the meter's S0 output) do not speak TownPulse's JSON: their frames go
to a LoRaWAN network server, which forwards each uplink as a ChirpStack v4 `UplinkEvent` (JSON
marshaler) with the frame's bytes (`data`) and, when a codec is configured there, the decoded
fields (`object`). The encoding here is the inverse of the vendor's codec in the TTN Device
Repository (channel id, channel type, little-endian value).

Pure: no I/O. Deterministic for a given seed, except each uplink's deduplication id (a UUID, as
ChirpStack makes one per uplink).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from townpulse.simulator.events import STEP
from townpulse.simulator.readings import Metrics
from townpulse.simulator.town import U32, Device, LoRaModel, stable_int

# Milesight sends its periodic reports on this application port.
F_PORT = 85

# The simulated network server's tenant and application, fixed so that restarts send the same.
TENANT_ID = "5e1b6c4a-2f0d-4b8e-9a37-6d1c2b7e4f10"
TENANT_NAME = "Ville simulée"
APPLICATION_ID = "0b3c9a52-7d64-4e1f-8c2a-3f5d6e7a8b90"
APPLICATION_NAME = "townpulse-simulated-town"
DEVICE_PROFILES: dict[LoRaModel, tuple[str, str]] = {
    LoRaModel.EM310_UDL: ("6a1f0e2d-3c4b-4a59-8e7d-9f0a1b2c3d4e", "Milesight EM310-UDL"),
    LoRaModel.EM300_DI: ("7b2e1f3a-4d5c-4b6a-9f8e-0a1b2c3d4e5f", "Milesight EM300-DI"),
}
# Three gateways on high points of the town: the town hall, the church tower, the water tower.
GATEWAYS = ("0016c001ff10a101", "0016c001ff10a102", "0016c001ff10a103")
# EU868: the three default channels, then the five a Milesight device is given after joining.
CHANNELS_HZ = (
    868_100_000,
    868_300_000,
    868_500_000,
    867_100_000,
    867_300_000,
    867_500_000,
    867_700_000,
    867_900_000,
)
# Batteries last about ten years at one report per quarter hour: about 1 % every 40 days.
BATTERY_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
BATTERY_DAYS_PER_PCT = 40.0


# ---- the devices' bytes -------------------------------------------------------------------------


def encode_em310(*, distance_mm: int, battery_pct: int, tilted: bool = False) -> bytes:
    """An EM310-UDL's periodic report: battery (01 75), distance (03 82, uint16 LE), tilt (04 00).

    >>> encode_em310(distance_mm=2116, battery_pct=92, tilted=True).hex()  # the official vector
    '01755c03824408040001'
    """
    if not 0 <= distance_mm <= 0xFFFF:
        raise ValueError(f"distance {distance_mm} mm does not fit the sensor's uint16")
    return (
        bytes((0x01, 0x75, _battery_byte(battery_pct)))
        + bytes((0x03, 0x82))
        + struct.pack("<H", distance_mm)
        + bytes((0x04, 0x00, 1 if tilted else 0))
    )


def em310_object(*, distance_mm: int, battery_pct: int, tilted: bool = False) -> dict[str, Any]:
    """What the EM310-UDL's codec makes of `encode_em310`'s bytes (the server's `object`)."""
    return {"battery": battery_pct, "distance": distance_mm, "tilt": "tilt" if tilted else "normal"}


def encode_em300(*, pulses: int, battery_pct: int) -> bytes:
    """An EM300-DI's report: battery (01 75), pulse count (05 c8, uint32 LE, wrapping at 2**32).

    >>> encode_em300(pulses=256, battery_pct=92).hex()  # the official vector
    '01755c05c800010000'
    >>> encode_em300(pulses=2**32 + 5, battery_pct=92)[-4:] == (5).to_bytes(4, "little")
    True
    """
    return bytes((0x01, 0x75, _battery_byte(battery_pct), 0x05, 0xC8)) + struct.pack(
        "<I", pulses % U32
    )


def em300_object(*, pulses: int, battery_pct: int) -> dict[str, Any]:
    """What the EM300-DI's codec makes of `encode_em300`'s bytes."""
    return {"battery": battery_pct, "pulse": pulses % U32}


def _battery_byte(battery_pct: int) -> int:
    if not 0 <= battery_pct <= 100:
        raise ValueError(f"battery {battery_pct} % outside 0..100")
    return battery_pct


def distance_mm(fill_pct: float, depth_mm: int) -> int:
    """What the lid's sensor measures above waste filling `fill_pct` of a bin `depth_mm` deep.

    The inverse of the profile's `fill_from_distance` (the sensor mounted at the full line).

    >>> distance_mm(0.0, 1000), distance_mm(63.5, 1000), distance_mm(100.0, 1200)
    (1000, 365, 0)
    """
    fill = min(100.0, max(0.0, fill_pct))
    return round(depth_mm * (1.0 - fill / 100.0))


def battery_pct(device: Device, ts: datetime) -> int:
    """The device's battery level: its own start, falling slowly with time.

    >>> from townpulse.simulator.town import build_town
    >>> bin_ = build_town(energy=0, waste=3, traffic=0, lorawan_bins=1.0).get("bin-001")
    >>> later = BATTERY_EPOCH + timedelta(days=400)
    >>> battery_pct(bin_, BATTERY_EPOCH) - battery_pct(bin_, later)
    10
    """
    start = 60 + stable_int(f"battery:{device.id}") % 41
    days = max(0.0, (ts - BATTERY_EPOCH).total_seconds() / 86_400)
    return max(5, start - math.floor(days / BATTERY_DAYS_PER_PCT))


# ---- the radio link ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Radio:
    """How one uplink was heard: by `gateways` gateways, the first the best."""

    rssi: int  # dBm, at the best gateway
    snr: float  # dB, at the best gateway
    dr: int  # EU868 data rate: 5 is SF7, 0 is SF12 (ADR lowers it as the link weakens)
    gateways: int
    channel: int

    @property
    def spreading_factor(self) -> int:
        return 12 - self.dr


def radio(device: Device, *, f_cnt: int, seed: int) -> Radio:
    """A plausible reception of frame `f_cnt`: a device's own path loss plus fading.

    Bins are metal boxes at street level and meters sit in basements: their links are weaker
    than a LoRaWAN device's on a wall, some near the edge of what SF12 still decodes.

    >>> from townpulse.simulator.town import build_town
    >>> bin_ = build_town(energy=0, waste=3, traffic=0, lorawan_bins=1.0).get("bin-002")
    >>> r = radio(bin_, f_cnt=7, seed=42)
    >>> r == radio(bin_, f_cnt=7, seed=42) and -126 <= r.rssi <= -70 and 1 <= r.gateways <= 3
    True
    """
    base = -124.0 + (stable_int(f"path-loss:{seed}:{device.id}") % 4_000) / 100.0  # -124..-84
    rng = random.Random(f"radio:{seed}:{device.id}:{f_cnt}")
    rssi = round(min(-70.0, max(-126.0, base + rng.gauss(0.0, 3.0))))
    # LoRa demodulates below the noise floor: the SNR follows the RSSI down to about -20 dB.
    snr = round(min(11.0, max(-20.0, (rssi + 108) * 0.6 + rng.gauss(0.0, 1.0))), 1)
    dr = next((d for d, floor in _DR_FLOORS if snr >= floor), 0)
    gateways = 1 + (rssi > -105) + (rssi > -92)
    return Radio(rssi=rssi, snr=snr, dr=dr, gateways=gateways, channel=rng.randrange(8))


# ADR: the fastest data rate whose demodulation floor the SNR clears with a margin.
_DR_FLOORS = ((5, -5.0), (4, -7.5), (3, -10.0), (2, -12.5), (1, -15.0))


# ---- uplinks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One uplink's application payload and what the vendor's codec decodes it to."""

    f_port: int
    payload: bytes
    decoded: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a device stood after the newest uplink TownPulse stored of it (None: never heard)."""

    last_ts: datetime
    f_cnt: int | None = None
    pulses: int | None = None


class LoRaWanDevice:
    """One LoRaWAN device of the town: turns its simulated readings into its uplinks.

    Its frame counter goes up by one per reporting interval (as if nothing were lost between
    two heard frames). An EM300-DI's pulse count is cumulative: it starts from the count
    TownPulse last stored (`cursor`), else from the meter's total when fitted, and adds each
    interval's energy in whole pulses, carrying the remainder. A reading at or before the cursor
    is not sent again: the device cannot send the past, and the server's replay check would
    refuse it.
    """

    def __init__(
        self,
        device: Device,
        *,
        seed: int,
        cursor: Cursor | None = None,
        step: timedelta = STEP,
    ) -> None:
        if device.lorawan is None:
            raise ValueError(f"{device.id} is not a LoRaWAN device")
        self.device = device
        self.lorawan = device.lorawan
        self._seed = seed
        self._step = step
        self._cursor = cursor
        self._anchor: tuple[datetime, int] | None = None
        if cursor is not None and cursor.f_cnt is not None:
            self._anchor = (cursor.last_ts, cursor.f_cnt)
        self.pulses = device.lorawan.initial_pulses
        if cursor is not None and cursor.pulses is not None:
            self.pulses = cursor.pulses
        self._remainder_kwh = 0.0

    def frame(self, ts: datetime, metrics: Metrics) -> Frame | None:
        """The frame the device sends for the interval ending at `ts`, or None."""
        if self._cursor is not None and ts <= self._cursor.last_ts:
            return None
        battery = battery_pct(self.device, ts)
        if self.lorawan.model is LoRaModel.EM310_UDL:
            fill = metrics.get("fill_pct")
            if fill is None or self.lorawan.bin_depth_mm is None:
                return None
            distance = distance_mm(fill, self.lorawan.bin_depth_mm)
            return Frame(
                F_PORT,
                encode_em310(distance_mm=distance, battery_pct=battery),
                em310_object(distance_mm=distance, battery_pct=battery),
            )
        kwh = metrics.get("energy_kwh")
        if kwh is None or self.lorawan.kwh_per_pulse is None:
            return None
        pulses = self.count(kwh)
        return Frame(
            F_PORT,
            encode_em300(pulses=pulses, battery_pct=battery),
            em300_object(pulses=pulses, battery_pct=battery),
        )

    def count(self, kwh: float) -> int:
        """Add one interval's energy to the pulse count; the count, wrapped to a uint32."""
        assert self.lorawan.kwh_per_pulse is not None
        total = self._remainder_kwh + max(0.0, kwh)
        whole = math.floor(total / self.lorawan.kwh_per_pulse + 1e-9)
        self._remainder_kwh = max(0.0, total - whole * self.lorawan.kwh_per_pulse)
        self.pulses = (self.pulses + whole) % U32
        return self.pulses

    def f_cnt(self, ts: datetime) -> int:
        """The frame counter of the uplink at `ts`: one more per interval since the anchor."""
        if self._anchor is None:
            # Never heard: it joins now, and a join starts the frame counter at 0.
            self._anchor = (ts, 0)
        anchor_ts, anchor_cnt = self._anchor
        return (anchor_cnt + round((ts - anchor_ts) / self._step)) % U32

    def uplink(self, ts: datetime, metrics: Metrics, *, with_object: bool) -> dict[str, Any] | None:
        """The ChirpStack uplink event for one reading, or None if the device sends nothing."""
        frame = self.frame(ts, metrics)
        if frame is None:
            return None
        f_cnt = self.f_cnt(ts)
        return uplink_event(
            self.device,
            frame,
            ts=ts,
            f_cnt=f_cnt,
            dedup_id=str(uuid.uuid4()),
            link=radio(self.device, f_cnt=f_cnt, seed=self._seed),
            with_object=with_object,
        )


def rfc3339(ts: datetime) -> str:
    """A timestamp as ChirpStack's JSON marshaler writes it (chrono's RFC 3339, offset +00:00).

    >>> rfc3339(datetime(2026, 3, 2, 8, 15, tzinfo=UTC))
    '2026-03-02T08:15:00+00:00'
    >>> rfc3339(datetime(2026, 3, 2, 8, 15, 0, 41_500, tzinfo=UTC))
    '2026-03-02T08:15:00.041500+00:00'
    """
    if ts.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return ts.astimezone(UTC).isoformat()


def uplink_event(
    device: Device,
    frame: Frame,
    *,
    ts: datetime,
    f_cnt: int,
    dedup_id: str,
    link: Radio,
    with_object: bool,
) -> dict[str, Any]:
    """ChirpStack v4's `integration.UplinkEvent` as its JSON marshaler sends it.

    Protobuf's JSON mapping with camelCase names, bytes as base64, enums by name. ChirpStack
    writes every scalar of the event itself, and leaves zero values out of the gateway messages
    inside (`rxInfo`, `txInfo`). `object` is there only when the server decodes (a codec in its
    device profile). `time` is when the uplink was received: the reading's own time.
    """
    assert device.lorawan is not None
    profile_id, profile_name = DEVICE_PROFILES[device.lorawan.model]
    dev_eui = device.lorawan.dev_eui
    event: dict[str, Any] = {
        "deduplicationId": dedup_id,
        "time": rfc3339(ts),
        "deviceInfo": {
            "tenantId": TENANT_ID,
            "tenantName": TENANT_NAME,
            "applicationId": APPLICATION_ID,
            "applicationName": APPLICATION_NAME,
            "deviceProfileId": profile_id,
            "deviceProfileName": profile_name,
            "deviceName": device.name,
            "devEui": dev_eui,
            "deviceClassEnabled": "CLASS_A",
            "tags": {},
        },
        "devAddr": dev_addr(dev_eui),
        "adr": True,
        "dr": link.dr,
        "fCnt": f_cnt,
        "fPort": frame.f_port,
        "confirmed": False,
        "data": base64.b64encode(frame.payload).decode("ascii"),
        "rxInfo": _rx_info(dev_eui, ts=ts, f_cnt=f_cnt, link=link),
        "txInfo": {
            "frequency": CHANNELS_HZ[link.channel],
            "modulation": {
                "lora": {
                    "bandwidth": 125_000,
                    "spreadingFactor": link.spreading_factor,
                    "codeRate": "CR_4_5",
                }
            },
        },
        "regionConfigId": "eu868",
    }
    if with_object:
        event["object"] = dict(frame.decoded)
    return event


def _rx_info(dev_eui: str, *, ts: datetime, f_cnt: int, link: Radio) -> list[dict[str, Any]]:
    first = stable_int(f"gateway:{dev_eui}") % len(GATEWAYS)
    out = []
    for i in range(link.gateways):
        rx: dict[str, Any] = {
            "gatewayId": GATEWAYS[(first + i) % len(GATEWAYS)],
            "uplinkId": stable_int(f"uplink:{dev_eui}:{f_cnt}:{i}") % U32,
            # The server's receive time: the packet forwarder's few tens of milliseconds later.
            "nsTime": rfc3339(ts + timedelta(milliseconds=35 + 7 * i)),
            "rssi": link.rssi - 4 * i,
            "snr": round(link.snr - 1.5 * i, 1),
            "channel": link.channel,
            "crcStatus": "CRC_OK",
        }
        if link.channel >= 3:
            rx["rfChain"] = 1  # the second radio serves the 867 MHz channels; 0 is left out
        out.append(rx)
    return out


def dev_addr(dev_eui: str) -> str:
    """The device's network address in the session the simulated server gave it.

    >>> dev_addr("24e1240ed1ac0347")
    '01aec4d5'
    """
    # 0x01: The Things Network's and ChirpStack's default NetID 000000 prefix range.
    return "01" + hashlib.sha256(f"devaddr:{dev_eui}".encode()).hexdigest()[:6]


def event_body(event: Mapping[str, Any]) -> bytes:
    """The event's JSON body as the HTTP integration POSTs it."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
