"""The waste domain, as the platform's wiring sees it (shared/domains.py, docs/domains.md)."""

from shared.domains import ConsolePage, DomainManifest, ServicePart, Table

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
    datasets=("waste-fill-by-zone",),
)
