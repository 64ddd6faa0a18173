"""TownPulse tools: the `townpulse` CLI, the local stack and the town simulator.

This layer starts services as processes and talks to them over HTTP/MQTT; it imports none of
them. One module is the exception: `townpulse.together`, the compact layout's process, loads the
services it is asked for by module name (importlib, from the stack's service list) and runs them
in one interpreter. Until domains declare manifests it is the only one allowed to; the import
contracts in pyproject.toml (`make lint`) hold the rest of this layer to no service import.
"""
