"""The lighting domain, as the platform's wiring sees it (shared/domains.py, docs/domains.md)."""

from shared.domains import ConsolePage, Dataset, DomainManifest, Metric, ServicePart, Table

# A controller has up to this many circuits (outputs), each reported as circuit_<n>_on.
MAX_CIRCUITS = 8

MANIFEST = DomainManifest(
    name="lighting",
    topic="readings.lighting",
    service=ServicePart(module="services.lighting", default_port=18107),
    tables=(
        Table("lighting_readings", retention="scores", age="ts", policy=True),
        Table("lighting_episodes", retention="episodes", age="started_at"),
        Table("lighting_circuits", retention="deleted_device_state"),
    ),
    routes=("lighting",),
    metrics=(
        # A controller's dimming level, % of full power.
        Metric("dimming_pct", "%", 0.0, 100.0),
        # Its circuits: 1 on, 0 off.
        *(Metric(f"circuit_{n}_on", None, 0.0, 1.0) for n in range(1, MAX_CIRCUITS + 1)),
    ),
    # Its own Alembic branch, services/lighting/migrations/.
    migrations=True,
    console=(ConsolePage("/lighting", "lighting", "Lighting"),),
    datasets=(
        Dataset(
            id="lighting-monthly-kwh-by-district",
            title="Monthly electricity used by public lighting per district",
            description="kWh per calendar month (the town's, in its time zone) and district, "
            "summed over the district's lighting cabinets; first_day and last_day bound the "
            "days counted (a month at either end of the period asked may be partial). A "
            "district with fewer cabinets than the aggregation floor is left out.",
            keywords=("public lighting", "electricity", "energy"),
            columns=("month", "district", "cabinets", "first_day", "last_day", "kwh"),
            floor="devices",
            resolution="P1M",
        ),
        Dataset(
            id="lighting-schedule",
            title="Public lighting schedule",
            description="For each night: sunset and sunrise at the town's coordinates, and the "
            "hours the council's schedule switches the street lights off or dims them (to "
            "dim_pct % of full power), in the town's local time; full_h, dim_h and off_h are "
            "the night's hours at full power, dimmed and off. The nights of the next 31 days "
            "unless a period is asked.",
            keywords=("public lighting", "street lights", "schedule", "dimming"),
            columns=(
                "night",
                "sunset",
                "sunrise",
                "off_from",
                "off_to",
                "dim_from",
                "dim_to",
                "dim_pct",
                "full_h",
                "dim_h",
                "off_h",
            ),
            floor=None,
            resolution="P1D",
            served_at="schedule",
        ),
    ),
)
