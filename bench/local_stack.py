"""What the benchmarks that start the service for real share: a scratch database, a worker's wait.

Used by `bench_site.py`, `bench_fairness.py` and `bench_latency.py`; run as scripts, they import
it from this folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

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


def wait_ready(log: Path, worker: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    """Wait until the Celery worker writing `log` says it is ready; exit with its log if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in log.read_text(errors="replace"):
            return
        if worker.poll() is not None:
            sys.exit(f"The worker exited:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    sys.exit(f"The worker was not ready in {timeout:.0f} s:\n{log.read_text()[-3000:]}")
