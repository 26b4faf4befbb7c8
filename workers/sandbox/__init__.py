"""Sandboxes for student code: one interface (`Sandbox.run`), one module per backend.

Student code runs only inside these. Both backends enforce the same guarantees (no network,
read-only root, noexec scratch tmpfs, uid 65534 without capabilities, memory/pids/CPU/file-size
limits, a wall-clock deadline that kills the whole process tree, a cap on captured output, and an
environment made only of what the job passes). `get_sandbox("docker")` or `get_sandbox("bwrap")`
returns one; `environment.python_environment()` says what to mount to run the project's Python.
"""

from __future__ import annotations

from typing import Any

from workers.sandbox.base import (
    Limits,
    Mount,
    Reason,
    Sandbox,
    SandboxError,
    SandboxJob,
    SandboxResult,
)

BACKENDS = ("docker", "bwrap")

__all__ = [
    "BACKENDS",
    "Limits",
    "Mount",
    "Reason",
    "Sandbox",
    "SandboxError",
    "SandboxJob",
    "SandboxResult",
    "get_sandbox",
    "reap_orphans",
]


def get_sandbox(name: str, **options: Any) -> Sandbox:
    """A sandbox backend by name.

    Args:
        name: "docker" or "bwrap".
        **options: Passed to the backend's constructor (`DockerSandbox(image=, client=,
            runtime=)`, `BwrapSandbox(bwrap=, use_cgroups=)`).

    Raises:
        ValueError: Unknown backend name.
        SandboxError: The backend cannot run on this host (engine down, bwrap missing).
    """
    if name == "docker":
        from workers.sandbox.docker_backend import DockerSandbox

        return DockerSandbox(**options)
    if name == "bwrap":
        from workers.sandbox.bwrap_backend import BwrapSandbox

        return BwrapSandbox(**options)
    raise ValueError(f"Unknown sandbox backend {name!r}. Expected one of {', '.join(BACKENDS)}.")


def reap_orphans(name: str) -> int:
    """Remove what jobs of killed workers left behind on this host, for a maintenance task.

    Docker: containers past their deadline label. bwrap: scratch mounts and empty cgroups of
    dead jobs. (Every new backend instance does this too; this is for periodic sweeps.)

    Returns:
        How many containers, mounts and groups were removed.
    """
    if name == "docker":
        from workers.sandbox.docker_backend import DockerSandbox, reap_expired_containers

        return reap_expired_containers(DockerSandbox().client)
    if name == "bwrap":
        from workers.sandbox.bwrap_backend import reap_stale

        return reap_stale()
    raise ValueError(f"Unknown sandbox backend {name!r}. Expected one of {', '.join(BACKENDS)}.")
