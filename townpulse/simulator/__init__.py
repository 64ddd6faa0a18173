"""Town simulator: energy meters, waste bins and traffic counters of a small French town.

The model (`town`, `energy`, `waste`, `traffic`, `events`, `readings`, and `lorawan` for the
devices behind a LoRaWAN network server) is pure and deterministic; `runner` registers the
devices and publishes their readings over MQTT, or as ChirpStack uplink events over HTTP
(`chirpstack_link`) for the LoRaWAN ones.
"""

from __future__ import annotations

from townpulse.simulator.events import (
    EVENT_KINDS,
    LabelledEvent,
    parse_kinds,
    schedule_events,
)
from townpulse.simulator.readings import Reading, iter_readings, to_payload
from townpulse.simulator.town import Device, Domain, Town, build_town

__all__ = [
    "EVENT_KINDS",
    "Device",
    "Domain",
    "LabelledEvent",
    "Reading",
    "Town",
    "build_town",
    "iter_readings",
    "parse_kinds",
    "schedule_events",
    "to_payload",
]
