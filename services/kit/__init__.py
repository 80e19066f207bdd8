"""The runtime every Zentry service shares, so that a service's own code is only its domain.

boot (server start and graceful stop), settings, logs, errors, auth, telemetry,
discovery (Consul), db (SQLAlchemy + Alembic), outbox and consumer (Kafka).
"""
