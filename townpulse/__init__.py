"""TownPulse tools: the `townpulse` CLI, the local stack and the town simulator.

This layer starts services as processes and talks to them over HTTP/MQTT; it never imports them.
"""
