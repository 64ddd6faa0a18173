"""TownPulse's shared library: message schemas, topics, settings and Kafka/DB/HTTP plumbing.

Services import from here; this package never imports a service.
"""
