"""The domains this platform runs: one line each, the module holding its manifest.

shared.domains loads these by name (so that shared/ imports no service); everything that names
domains (erasure, retention, topics, the stack's services, the API's forwarding, the console's
navigation) is computed from their manifests. docs/domains.md: adding a domain.
"""

MANIFESTS = (
    "services.energy.manifest",
    "services.waste.manifest",
    "services.traffic.manifest",
    "services.lighting.manifest",
)
