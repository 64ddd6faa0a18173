"""The operator REST API: device registry, readings, dead letters, API keys."""
