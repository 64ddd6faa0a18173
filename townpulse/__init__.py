"""TownPulse tools: the `townpulse` CLI, the local stack and the town simulator.

This layer starts services as processes and talks to them over HTTP/MQTT; it imports none of
them, with one exception: `townpulse.together`, the process of the compact layout, loads the
services it is named by their module (from the stack's service list, with importlib) to run
them in one interpreter. Until the domains declare manifests, it is the one module allowed to;
the import contracts in pyproject.toml (`make lint`) hold the rest of this layer to none.
"""
