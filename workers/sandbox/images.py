"""Sandbox images for the Docker backend.

Production uses the pinned image built from `workers/sandbox/Dockerfile` (TensorFlow GPU base).
Where no registry can be reached (development, CI here), `ensure_local_image` creates an empty
image with `docker import` of an empty tar (FIELD-NOTES): the job then sees only what the backend
bind-mounts read-only (system libraries, the interpreter, the code), exactly like bubblewrap.
"""

from __future__ import annotations

import io
import tarfile
import threading
from typing import Any

from workers.sandbox.base import SandboxError

LOCAL_IMAGE = "grader-sandbox-local:empty"
PRODUCTION_IMAGE = "grader-sandbox:2.21.0-gpu"

_lock = threading.Lock()


def missing_image_message(name: str) -> str:
    """Why the docker backend cannot run a job in `name`, an image this engine lacks, and how
    to get one: build it, or run the empty local image with this host's Python."""
    return (
        f"The sandbox image `{name}` is not built on this Docker engine (No such image: "
        f"{name}). Build it: `docker build -f workers/sandbox/Dockerfile -t {name} .` "
        "(or `docker compose --profile build build sandbox`, see README), or set "
        "`GRADER_SANDBOX_IMAGE=local` to run jobs in an empty image with this host's Python "
        "mounted."
    )


def _empty_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w"):
        pass
    return buffer.getvalue()


def ensure_local_image(client: Any, name: str = LOCAL_IMAGE) -> str:
    """Make sure the empty local image `name` exists; create it once by importing an empty tar.

    Idempotent and safe to call from several threads of one worker.

    Args:
        client: A `docker.DockerClient`.
        name: `repository:tag` of the image.

    Returns:
        The image name, for `containers.create(image=...)`.

    Raises:
        SandboxError: The engine refused the import.
    """
    import docker.errors

    with _lock:
        try:
            client.images.get(name)
            return name
        except docker.errors.ImageNotFound:
            pass
        repository, _, tag = name.partition(":")
        try:
            client.api.import_image_from_data(
                _empty_tar(), repository=repository, tag=tag or "latest"
            )
            client.images.get(name)
        except docker.errors.APIError as exc:
            raise SandboxError(f"Could not create the local sandbox image {name}: {exc}") from exc
        return name
