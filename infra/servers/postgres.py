"""PostgreSQL from Debian's packages, one database per service.

PostgreSQL refuses to run as root, so when infra runs as root the server runs
as the `postgres` system user that Debian's package creates. Clients connect
over TCP only (no Unix socket: its path length limit breaks deep checkouts).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from infra.config import PostgresSettings
from infra.errors import InfraError
from infra.processes import run_logged
from infra.servers.base import Command, Port, Server

SERVER_USER = "postgres"
OUTSIDE_PRIVATE_CHECKOUTS = Path("/var/lib/zentry")


class Postgres(Server):
    name = "postgres"
    title = "PostgreSQL"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, then exit cleanly

    def ports(self) -> list[Port]:
        return [Port("ZENTRY_POSTGRES_PORT", self.settings.postgres.port)]

    @property
    def cluster_dir(self) -> Path:
        """Resolved: the server's user may not be able to follow `.run/postgres` itself."""
        return self.data_dir.resolve() / "data"

    def probe(self) -> None:
        with psycopg.connect(self.settings.postgres.dsn("postgres")) as conn:
            conn.execute("SELECT 1")

    def prepare(self) -> None:
        user = _server_user()
        if user is not None and not self.data_dir.exists():
            self._make_home_reachable_by(user)
        super().prepare()
        if user is not None:
            _chown_tree(self.data_dir.resolve(), user)
        if (self.cluster_dir / "PG_VERSION").exists():
            return
        password_file = self.cluster_dir.parent / "initdb.pw"
        password_file.write_text(self.settings.postgres.password + "\n")
        if user is not None:
            os.chown(password_file, user.pw_uid, user.pw_gid)
        try:
            run_logged(
                [
                    str(server_bindir() / "initdb"),
                    f"--pgdata={self.cluster_dir}",
                    f"--username={self.settings.postgres.user}",
                    f"--pwfile={password_file}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
                self.process.log_file,
                f"initdb failed for {self.cluster_dir}",
                cwd=self.cluster_dir.parent,
                user=user.pw_name if user else None,
            )
        finally:
            password_file.unlink(missing_ok=True)

    def _make_home_reachable_by(self, user: pwd.struct_passwd) -> None:
        """Keep the cluster where the server's user can reach it.

        A checkout under a private folder (a root-only temporary directory, /root)
        cannot be entered by `postgres`; then the cluster lives under
        /var/lib/zentry and `.run/postgres` is a symlink to it (`infra reset`
        removes both). Permissions of folders outside the project are not changed.
        """
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        if self.data_dir.is_symlink():  # its target was removed by hand
            self.data_dir.unlink()
        if _can_enter(user, self.settings.run_dir):
            return
        digest = hashlib.sha256(str(self.settings.run_dir).encode()).hexdigest()[:12]
        elsewhere = OUTSIDE_PRIVATE_CHECKOUTS / f"postgres-{digest}"
        elsewhere.mkdir(parents=True, exist_ok=True)
        self.data_dir.symlink_to(elsewhere, target_is_directory=True)
        if not _can_enter(user, elsewhere):
            raise InfraError(
                f"PostgreSQL runs as user '{user.pw_name}', who can reach neither "
                f"{self.settings.run_dir} nor {elsewhere}; set ZENTRY_RUN_DIR to a folder it can"
            )

    def command(self) -> Command:
        user = _server_user()
        return Command(
            argv=[
                str(server_bindir() / "postgres"),
                "-D", str(self.cluster_dir),
                "-c", f"listen_addresses={self.host}",
                "-c", f"port={self.settings.postgres.port}",
                "-c", "unix_socket_directories=",
                "-c", "max_connections=300",
                "-c", "log_line_prefix=%m [%p] %q%u@%d ",
            ],
            user=user.pw_name if user else None,
        )  # fmt: skip

    def after_ready(self) -> None:
        """Create each service's database if it is missing."""
        with psycopg.connect(self.settings.postgres.dsn("postgres"), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for database in self.settings.postgres.databases:
                if database not in existing:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


@contextmanager
def scratch_database(postgres: PostgresSettings, name: str) -> Iterator[str]:
    """An empty database `name` for one test or benchmark; yields its SQLAlchemy URL.

    Dropped when the block ends, open connections and all. Blocks; raises
    psycopg's errors (a database of that name already exists, the server is down).
    """
    admin = postgres.dsn("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres.url(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def server_bindir() -> Path:
    """PostgreSQL's server binaries: ZENTRY_POSTGRES_BINDIR, else Debian's newest, else PATH."""
    configured = os.environ.get("ZENTRY_POSTGRES_BINDIR")
    candidates = [Path(configured)] if configured else []
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if (bindir / "postgres").exists() and (bindir / "initdb").exists():
            return bindir
    raise InfraError(
        "PostgreSQL's server is not installed; run `make setup` (it installs Debian's "
        "postgresql package) or set ZENTRY_POSTGRES_BINDIR to a folder holding postgres and initdb"
    )


def _server_user() -> pwd.struct_passwd | None:
    """The account the server runs as: `postgres` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise InfraError(
            "PostgreSQL cannot run as root and the 'postgres' user does not exist; "
            "run `make setup` (Debian's postgresql package creates it)"
        ) from None


def _chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    for path in [root, *root.rglob("*")]:
        if path.stat().st_uid != user.pw_uid:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)


def _can_enter(user: pwd.struct_passwd, folder: Path) -> bool:
    return subprocess.run(["test", "-x", str(folder)], user=user.pw_name).returncode == 0
