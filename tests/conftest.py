"""Suite-wide fixtures: access to the real services, failing (not skipping) in CI.

A test that needs PostgreSQL, Redis, Docker or bubblewrap asks for the matching fixture. Outside
CI a missing service skips the test with the reason; with ``CI=true`` it fails, so a green CI
always means the real service was exercised.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def service_missing(what: str) -> None:
    """Fail in CI, skip elsewhere: a missing service never passes silently in CI."""
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message}; CI must provide it (see .ci/run).", pytrace=False)
    pytest.skip(message)


def _address(url: str, default_port: int) -> tuple[str, int]:
    """The (host, port) a service URL names; the ports of CI's shared services by default."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A URL of the real PostgreSQL server (loopback; `TEST_POSTGRES_URL` picks another)."""
    host, port = _address(POSTGRES_URL, 5432)
    if not _port_open(host, port):
        service_missing(f"PostgreSQL on {host}:{port}")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A database of the real Redis server (loopback, db 15; `TEST_REDIS_URL` picks another)."""
    host, port = _address(REDIS_URL, 6379)
    if not _port_open(host, port):
        service_missing(f"Redis on {host}:{port}")
    return REDIS_URL


@pytest.fixture(scope="session")
def docker_available() -> None:
    """The Docker engine answers on its socket."""
    if shutil.which("docker") is None:
        service_missing("the docker client")
    result = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        service_missing(f"the Docker engine ({result.stderr.strip()[:200]})")


@pytest.fixture(scope="session")
def bwrap_available() -> None:
    """bubblewrap is installed and can create namespaces here."""
    if shutil.which("bwrap") is None:
        service_missing("bubblewrap (bwrap)")


@pytest.fixture(autouse=True)
def _no_warm_sandbox_outlives_its_test() -> Iterator[None]:
    """Stop the warm sandboxes a test's stages started in this process (`workers.pipeline.warm_*`
    start one after a build or a training): each imports Keras and waits minutes for a job,
    which no later test should share or pay for. Only modules already imported are asked."""
    yield
    import sys

    for name in ("warm_build", "warm_evaluate", "warm_train"):
        module = sys.modules.get(f"workers.pipeline.{name}")
        if module is not None:
            module.stop()
