"""The energy domain, as the platform's wiring sees it (shared/domains.py, docs/domains.md)."""

from shared.domains import ConsolePage, DomainManifest, ServicePart, Table

MANIFEST = DomainManifest(
    name="energy",
    topic="readings.energy",
    service=ServicePart(module="services.energy", default_port=18103),
    tables=(
        Table("energy_scores", retention="scores", age="ts", policy=True),
        Table("energy_episodes", retention="episodes", age="started_at"),
        Table("energy_forecasts", retention="forecasts", age="target_ts"),
    ),
    routes=("energy",),
    console=(ConsolePage("/energy", "energy", "Energy"),),
    datasets=("energy-daily-public-buildings",),
)
