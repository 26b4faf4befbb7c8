"""A scratch PostgreSQL database for a benchmark, and a function that drops it.

Shared by the benchmarks that start the service for real (`bench_site.py`, `bench_fairness.py`,
`bench_latency.py`); run as scripts, they import it from this folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable

#: The maintenance database the scratch one is created from (`BENCH_ADMIN_URL`).
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def create_database() -> tuple[str, Callable[[], None]]:
    """A new database on the local PostgreSQL: its URL, and a function that drops it."""
    import psycopg

    name = f"grader_bench_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgres://postgres@127.0.0.1:5432/{name}", drop
