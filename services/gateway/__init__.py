"""MQTT -> Kafka gateway: validates device payloads, acknowledges only what Kafka has."""
