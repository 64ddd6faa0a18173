"""The waste domain, as the platform's wiring sees it (shared/domains.py, docs/domains.md)."""

from shared.domains import ConsolePage, Dataset, DomainManifest, ServicePart, Table

MANIFEST = DomainManifest(
    name="waste",
    topic="readings.waste",
    service=ServicePart(module="services.waste", default_port=18104),
    tables=(
        Table("waste_levels", retention="scores", age="ts", policy=True),
        Table("waste_collections", retention="episodes", age="ts"),
        # A bin's state lives as long as the bin: pruned once its device was deleted.
        Table("waste_bins", retention="deleted_device_state"),
        Table("waste_episodes", retention="episodes", age="started_at"),
        # One row per day for the whole town (no device): the monthly report's, kept.
        Table("waste_plans", retention=None, device_column=None),
    ),
    routes=("waste",),
    console=(ConsolePage("/waste", "waste", "Waste"),),
    datasets=(
        Dataset(
            id="waste-fill-by-zone",
            title="Daily fill level of waste bins per zone",
            description="Mean and highest reported fill level (percent) per day and zone. A "
            "zone with fewer bins than the aggregation floor is left out.",
            keywords=("waste", "bins", "fill level"),
            columns=("day", "zone", "bins", "mean_fill_pct", "max_fill_pct"),
            floor="devices",
            resolution="P1D",
        ),
    ),
)
