"""`python -m services.user.roles grant|revoke <username> <role>`: an operator's tool.

Roles (only "admin" so far: the product analytics queries) are never granted
through the API. A change shows in the user's next access token, so within
the token lifetime (ZENTRY_TOKEN_TTL) of their next log-in.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.kit.db import Database, migrate
from services.kit.settings import ConfigError, postgres_dsn
from services.user import domain, store
from services.user.app import MIGRATIONS

ROLES = ("admin",)


async def change(dsn: str, username: str, role: str, held: bool) -> bool:
    db = Database(dsn, pool_size=1)
    try:
        async with db.transaction() as session:
            return await store.change_role(session, domain.username_key(username), role, held)
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.user.roles", description=__doc__)
    parser.add_argument("action", choices=("grant", "revoke"))
    parser.add_argument("username")
    parser.add_argument("role", choices=ROLES)
    args = parser.parse_args(argv)
    try:
        dsn = postgres_dsn("user")
    except ConfigError as error:
        print(f"roles: {error}", file=sys.stderr)
        return 1
    migrate(postgres_dsn("user", session=True), MIGRATIONS)  # a session lock: not pooled
    if not asyncio.run(change(dsn, args.username, args.role, args.action == "grant")):
        print(f"roles: no user named {args.username!r}", file=sys.stderr)
        return 1
    verb = "now holds" if args.action == "grant" else "no longer holds"
    print(f"{args.username} {verb} {args.role!r}; it shows in their next access token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
