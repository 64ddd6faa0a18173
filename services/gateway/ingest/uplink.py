"""An uplink as a network server or a device's own format delivers it, before any mapping."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Link:
    """The radio link of one uplink, as the network server saw it (best gateway)."""

    rssi: float | None = None  # dBm
    snr: float | None = None  # dB
    gateways: int | None = None


@dataclass(frozen=True, slots=True)
class Uplink:
    """One device message from a network server (ChirpStack, TTS) or a device's own JSON.

    `device_key` is how the sender names the device: a DevEUI (16 lower-case hex digits) for
    LoRaWAN, else the device's external id (Tasmota's topic name, Shelly's id, a vendor's id).
    `payload` holds the raw application bytes, `decoded` what the network server's codec (or the
    device itself) made of them; either may be missing, not both.
    """

    source: str  # "chirpstack", "tts", "tasmota", "shelly"
    device_key: str
    time: datetime  # the uplink's own time (the network server's), never the arrival's
    payload: bytes | None = None
    decoded: dict[str, Any] | None = None
    f_port: int | None = None
    f_cnt: int | None = None
    dedup_id: str | None = None  # the network server's deduplication or correlation id
    application: str | None = None  # ChirpStack application id, or TTS `app@tenant`
    link: Link = field(default_factory=Link)

    @property
    def dedup_key(self) -> str:
        """What makes two deliveries the same uplink: the server's id, else counter and time."""
        if self.dedup_id:
            return f"{self.device_key}|{self.dedup_id}"
        return f"{self.device_key}|{self.f_cnt}|{self.time.isoformat()}"
