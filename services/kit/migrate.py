"""`python -m services.kit.migrate [SERVICE ...]`: apply services' migrations (`make migrate`).

Services also migrate at start; this is for doing it ahead of a deploy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.kit.db import migrate
from services.kit.settings import postgres_dsn

SERVICES_DIR = Path(__file__).resolve().parent.parent


def with_migrations() -> list[str]:
    return sorted(p.parent.parent.name for p in SERVICES_DIR.glob("*/migrations/env.py"))


def main(argv: list[str] | None = None) -> int:
    known = with_migrations()
    parser = argparse.ArgumentParser(prog="python -m services.kit.migrate", description=__doc__)
    parser.add_argument(
        "services", nargs="*", metavar="SERVICE", help=f"default: all of {', '.join(known)}"
    )
    args = parser.parse_args(argv)
    unknown = set(args.services) - set(known)
    if unknown:
        parser.error(f"no migrations for {sorted(unknown)}; services with migrations: {known}")
    for service in args.services or known:
        migrate(postgres_dsn(service, session=True), SERVICES_DIR / service / "migrations")
        print(f"migrate  {service:<12} at head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
