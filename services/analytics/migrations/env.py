"""Alembic environment of the analytics service's database (shared body in services.kit.db)."""

from services.kit.db import run_migrations_env

run_migrations_env()
