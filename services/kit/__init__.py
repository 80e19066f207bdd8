"""The runtime every Zentry service shares, so that a service's own code is only its domain.

Configuration:
    settings        typed `ZENTRY_*` settings, read once at start
    addresses       where PostgreSQL, Redis, Kafka, Consul, Envoy and Zipkin answer, and defaults
    roster          which services exist, which consume events, which replay them
Serving (gRPC):
    boot            build the server, serve, stop gracefully
    periodic        a background loop that does one thing every so often
    interceptors    the one shape of the kit's server interceptors
    auth            JWT verification, public methods and roles from the protos
    clients         the caller's address and user agent, believed beside the gateway's secret
    errors          domain errors as gRPC statuses
    reflection      server reflection that also resolves method names
    healthcheck     `python -m services.kit.healthcheck`, the image's health check
    discovery       Consul registration, and following a service's healthy instances
    tls             mutual TLS: server and channel credentials, the callee's name checked
    heartbeat       under mutual TLS, an instance's own health check, reported to Consul
    profiles        the caller's own profile, asked of the user service
    telemetry       OpenTelemetry tracing across calls, SQL, Redis and messages
    metrics         Prometheus metrics: RPCs, consumers, the outbox, pools
    logs            JSON logs with the trace id
Storage:
    db              PostgreSQL through SQLAlchemy (or a transaction pooler), migrated by Alembic
    redis_client    Redis, or the primary its Sentinels name, logged in as the service
    fallback        Redis, and PostgreSQL for a second after it failed
    migrate         `python -m services.kit.migrate`: migrations ahead of a deploy
    tables          the kit's own tables: outbox, processed events, deleted users
    retention       bounded tables: rows older than their retention, swept in small batches
Events (Kafka):
    events          envelopes around domain messages
    topics          how topics are named
    outbox          the transactional outbox and its relay
    consumer        the consumer runner: a fetch a transaction, idempotency, dead letters
    deadletters     what is parked, and applying it again
    replay          rebuilding a read model from the first event
    erasure         deleted accounts stay deleted, replays included
Rules and values (pure):
    visibility      who may see whose nights
    dates           the span of dates Zentry holds
    zones           IANA time zones
    text            text as callers send it
    masks           update masks (AIP-134)
    paging          cursor pagination (AIP-158), page tokens bound to their list
    wellknown       Timestamp and Duration from and to Python values
"""
