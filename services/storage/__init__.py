"""Kafka -> PostgreSQL: readings and dead letters, in batches, idempotently."""
