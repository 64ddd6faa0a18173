"""The lighting domain, as the platform's wiring sees it (shared/domains.py, docs/domains.md)."""

from shared.domains import DomainManifest, Metric, ServicePart, Table

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
)
