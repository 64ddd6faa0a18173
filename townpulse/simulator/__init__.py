"""Town simulator: energy meters, waste bins, traffic counters and public lighting cabinets of a
small French town.

The model (`town`, `energy`, `waste`, `traffic`, `lighting`, `events`, `readings`, and `lorawan`
for the devices behind a LoRaWAN network server) is pure and deterministic; `runner` registers
the devices and publishes their readings over MQTT, or as ChirpStack uplink events over HTTP
(`chirpstack_link`) for the LoRaWAN ones.

This package module imports none of its modules (import them by their own names, e.g.
`townpulse.simulator.town.build_town`): a module of the package that imported the package
would run it first, and through it the modules that import that module, a cycle.
"""
