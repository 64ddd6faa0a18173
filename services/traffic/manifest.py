"""The traffic domain, as the platform's wiring sees it (shared/domains.py, docs/domains.md)."""

from shared.domains import ConsolePage, DomainManifest, ServicePart, Table

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
    datasets=("traffic-hourly-counts",),
)
