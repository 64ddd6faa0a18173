"""The lighting domain, as the platform's wiring sees it (shared/domains.py, docs/domains.md)."""

from shared.domains import DomainManifest, ServicePart, Table

MANIFEST = DomainManifest(
    name="lighting",
    topic="readings.lighting",
    service=ServicePart(module="services.lighting", port_setting="lighting_port"),
    tables=(
        Table("lighting_readings", retention="scores", age="ts", policy=True),
        Table("lighting_episodes", retention="episodes", age="started_at"),
        Table("lighting_circuits", retention="deleted_device_state"),
    ),
    routes=("lighting",),
)
