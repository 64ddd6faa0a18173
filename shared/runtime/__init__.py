"""The online-learning runtime every domain service runs on.

A Kafka consumer-group worker that keeps one model state per device, learns from every reading,
and commits, in one database transaction per batch, the derived rows, the touched devices' model
checkpoints, the events to emit (an outbox) and the consumed offsets. See `worker.py`.
"""
