"""What the ingestion benchmarks share: a throwaway PostgreSQL database, migrated, with Django set up on it."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to drop {name!r}: the benchmark database's name must contain 'bench'")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def django_on_fresh_database(default_database_url: str) -> str:
    """Drop and recreate the database of DATABASE_URL (`default_database_url` when unset), set
    Django up on it and migrate it; returns its URL."""
    url = os.environ.setdefault("DATABASE_URL", default_database_url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    recreate_database(url)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url
