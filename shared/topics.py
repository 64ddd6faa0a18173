"""Kafka topic and MQTT topic names: defined once, used by every producer and consumer."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal, TypeAlias

from shared import domains


# The registered domains (services/domains.py), as a type the schemas and mypy can check: one
# member per manifest, which _readings_topics() below and a test hold it to.
class Domain(StrEnum):
    ENERGY = "energy"
    WASTE = "waste"
    TRAFFIC = "traffic"
    LIGHTING = "lighting"


# Alerts come from the domains' devices and from the platform itself (a filling disk, a stale
# backup, an expiring certificate, a service that keeps restarting: townpulse/watch/).
PLATFORM: Literal["platform"] = "platform"
AlertDomain: TypeAlias = Domain | Literal["platform"]


def _readings_topics() -> dict[Domain, str]:
    """Each domain's readings topic, as its manifest declares it."""
    manifests = {m.name: m for m in domains.registered()}
    if set(manifests) != {d.value for d in Domain}:
        raise domains.ManifestError(
            f"the Domain enum ({', '.join(Domain)}) and the registered domains"
            f" ({', '.join(manifests)}) differ: add or remove the member in shared/topics.py"
        )
    return {d: manifests[d.value].topic for d in Domain}


READINGS_TOPICS: dict[Domain, str] = _readings_topics()
DEADLETTER_TOPIC = "readings.deadletter"
ALERTS_TOPIC = "alerts"

# Readings are keyed by device, so a device's readings keep their order within one partition.
# Six partitions let up to six consumers of a group share one domain's load.
READINGS_PARTITIONS = 6

MQTT_TOPIC_PREFIX = "sensors"
MQTT_SUBSCRIPTION = f"{MQTT_TOPIC_PREFIX}/+/+"

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def mqtt_topic(domain: Domain, device_id: str) -> str:
    """The only topic a device may publish on.

    >>> mqtt_topic(Domain.WASTE, "bin-17")
    'sensors/waste/bin-17'
    """
    return f"{MQTT_TOPIC_PREFIX}/{domain.value}/{device_id}"


def all_topics() -> list[str]:
    return [*READINGS_TOPICS.values(), DEADLETTER_TOPIC, ALERTS_TOPIC]
