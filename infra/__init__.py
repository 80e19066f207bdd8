"""Local infrastructure for Zentry: installs and runs the five real servers.

PostgreSQL, Redis, Apache Kafka (KRaft), Consul and Envoy are started on
loopback with their data and logs under `.run/`, from pinned tools kept under
`.tools/`. Entry point: `python -m infra {install,up,down,status,reset}`
(wrapped by the Makefile's `setup` and `infra-*` targets).
"""
