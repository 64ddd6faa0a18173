"""TownPulse services: each a small package with `create_app(settings)`.

Services import the shared library, never each other.
"""
