"""Choosing the sandbox backend for a stage."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings


def open_sandbox(name: str | None = None) -> Any:
    """The sandbox backend `name`, or the configured one (`GRADER_SANDBOX`), built from the
    settings (`workers.sandbox.from_settings`; backends by name in `workers.sandbox.BACKENDS`).

    Docker runs `GRADER_SANDBOX_IMAGE` (the production image from `workers/sandbox/Dockerfile`),
    or the empty local image with this host's interpreter mounted when that setting is empty
    or `local`.

    Raises:
        InfrastructureError: The backend cannot run here (engine down, bwrap missing).
    """
    from workers.pipeline.errors import InfrastructureError
    from workers.sandbox import SandboxError, from_settings

    name = name or settings.GRADER_SANDBOX
    try:
        return from_settings(settings, name)
    except SandboxError as exc:
        raise InfrastructureError(f"The {name} sandbox is not available: {exc}") from exc


def gpu_for_pool_process(index: int, gpu_ids: str) -> str | None:
    """The GPU a worker's pool process `index` owns, from the comma-separated `gpu_ids`.

    Processes are spread round-robin (4 processes on "0,1": 0, 1, 0, 1), so
    `--concurrency` = k x (number of GPUs) runs k trainings per GPU.
    """
    ids = [part.strip() for part in gpu_ids.split(",") if part.strip()]
    return ids[index % len(ids)] if ids else None


def worker_gpu_device() -> str | None:
    """The GPU this worker process owns (`GRADER_GPU_DEVICE`), or None on a CPU-only worker.

    Each GPU worker process is started with its own device id (compose file or `run_worker`),
    so concurrent trainings never share a GPU by accident.
    """
    value = os.environ.get("GRADER_GPU_DEVICE", "").strip()
    return value or None
