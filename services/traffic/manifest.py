"""The traffic domain, as the platform's wiring sees it (shared/domains.py, docs/domains.md)."""

from shared.domains import ConsolePage, Dataset, DomainManifest, ServicePart, Table

MANIFEST = DomainManifest(
    name="traffic",
    topic="readings.traffic",
    service=ServicePart(module="services.traffic", default_port=18106),
    tables=(
        Table("traffic_flows", retention="scores", age="ts", policy=True),
        Table("traffic_forecasts", retention="forecasts", age="target_ts"),
        Table("traffic_episodes", retention="episodes", age="started_at"),
    ),
    routes=("traffic",),
    console=(ConsolePage("/traffic", "traffic", "Traffic"),),
    datasets=(
        Dataset(
            id="traffic-hourly-counts",
            title="Hourly vehicle counts per traffic counter",
            description="Vehicles counted per hour by each road counter. An hour with fewer "
            "vehicles than the aggregation floor is left out, so no single trip shows.",
            keywords=("traffic", "road", "vehicle counts"),
            columns=("hour", "counter", "road", "zone", "vehicles"),
            floor="vehicles",
            resolution="PT1H",
        ),
    ),
)
