"""The energy domain, as the platform's wiring sees it (shared/domains.py, docs/domains.md)."""

from shared.domains import ConsolePage, Dataset, DomainManifest, ServicePart, Table

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
    datasets=(
        Dataset(
            id="energy-daily-public-buildings",
            title="Daily energy use of the town's public buildings",
            description="kWh per day (the town's calendar days, in its time zone) and building "
            "type, summed over the public buildings of that type. A type with fewer buildings "
            "than the aggregation floor is left out.",
            keywords=("energy", "public buildings", "electricity"),
            columns=("day", "building_type", "buildings", "kwh"),
            floor="devices",
            resolution="P1D",
        ),
    ),
)
