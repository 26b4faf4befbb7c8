"""Choosing the sandbox backend for a stage."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings


def open_sandbox(name: str | None = None) -> Any:
    """The sandbox backend `name`, or the configured one (`GRADER_SANDBOX`: docker or bwrap)."""
    from workers.sandbox import get_sandbox

    return get_sandbox(name or getattr(settings, "GRADER_SANDBOX", "bwrap"))


def worker_gpu_device() -> str | None:
    """The GPU this worker process owns (`GRADER_GPU_DEVICE`), or None on a CPU-only worker.

    Each GPU worker process is started with its own device id (compose file or `run_worker`),
    so concurrent trainings never share a GPU by accident.
    """
    value = os.environ.get("GRADER_GPU_DEVICE", "").strip()
    return value or None
