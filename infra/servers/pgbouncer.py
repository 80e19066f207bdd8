"""PgBouncer from Debian's packages, in transaction mode before PostgreSQL, as in production.

Production puts CloudNativePG's Pooler (PgBouncer, transaction mode) between the
services and PostgreSQL (k8s/README.md); the local mesh does the same, so every
query the services make is shown to work through a transaction pooler: no
prepared statement, session advisory lock, LISTEN or SET may outlive a
transaction there (services.kit.addresses.PostgresAddress). What needs a
session (migrations, the outbox relay's leader lock, LISTEN) goes to
PostgreSQL itself. PgBouncer refuses to run as root: started as root, it
drops to PostgreSQL's own user (`-u`) once it has read its files.
"""

from __future__ import annotations

import os
import shutil

import psycopg

from infra.errors import InfraError
from infra.servers.base import Command, Port, Server
from infra.servers.postgres import SERVER_USER

#: Connections PgBouncer keeps to PostgreSQL per database (and user); five databases
#: take at most 100 of PostgreSQL's 300, beside the sessions and the tools.
POOL_SIZE = 20
#: Client connections it takes: every local process's pool, and more.
MAX_CLIENTS = 2000


class PgBouncer(Server):
    name = "pgbouncer"
    title = "PgBouncer"

    @property
    def host(self) -> str:
        return self.settings.postgres.host

    def ports(self) -> list[Port]:
        return [Port("ZENTRY_POSTGRES_POOLER_PORT", self.settings.postgres.pooler_port)]

    def probe(self) -> None:
        """A query through it, to the service databases' first."""
        postgres = self.settings.postgres
        dsn = postgres.dsn(postgres.databases[0]).replace(
            f"port={postgres.port}", f"port={postgres.pooler_port}"
        )
        with psycopg.connect(dsn, prepare_threshold=None) as conn:
            conn.execute("SELECT 1")

    def prepare(self) -> None:
        super().prepare()
        postgres = self.settings.postgres
        users = self.data_dir / "users.txt"
        users.write_text(f'"{postgres.user}" "{postgres.password}"\n')
        os.chmod(users, 0o600)
        (self.data_dir / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "; Written by `infra up` on every start; edit infra/servers/pgbouncer.py.",
                    "[databases]",
                    f"* = host={postgres.host} port={postgres.port}",
                    "[pgbouncer]",
                    f"listen_addr = {self.host}",
                    f"listen_port = {postgres.pooler_port}",
                    "unix_socket_dir =",
                    "auth_type = scram-sha-256",
                    f"auth_file = {users}",
                    "pool_mode = transaction",
                    f"default_pool_size = {POOL_SIZE}",
                    f"max_client_conn = {MAX_CLIENTS}",
                    "server_reset_query =",
                    "ignore_startup_parameters = extra_float_digits",
                    "log_connections = 0",
                    "log_disconnections = 0",
                    "",
                ]
            )
        )

    def command(self) -> Command:
        binary = os.environ.get("ZENTRY_PGBOUNCER") or shutil.which("pgbouncer")
        if not binary:
            raise InfraError(
                "pgbouncer is not installed; run `make setup` (it installs Debian's pgbouncer "
                "package) or set ZENTRY_PGBOUNCER to its path"
            )
        argv = [binary]
        if os.geteuid() == 0:
            argv += ["-u", SERVER_USER]
        return Command(argv=[*argv, str(self.data_dir / "pgbouncer.ini")])
