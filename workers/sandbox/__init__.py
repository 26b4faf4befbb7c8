"""Sandboxes for student code: one interface (`Sandbox.run`), one module per backend.

Student code runs only inside these. Both backends enforce the same guarantees (no network,
read-only root, noexec scratch tmpfs, uid 65534 without capabilities, memory/pids/CPU/file-size
limits, a wall-clock deadline that kills the whole process tree, a cap on captured output, and an
environment made only of what the job passes). `get_sandbox("docker")` or `get_sandbox("bwrap")`
returns one, `from_settings(settings)` the configured one (`GRADER_SANDBOX`);
`environment.python_environment()` says what to mount to run the project's Python.

A new backend is one module (a class with `run(job, cancel=None) -> SandboxResult`, and
optionally a `from_settings(settings)` classmethod) plus its line in `BACKENDS`: the worker, the
`grade` and `grade_batch` commands take their choices from there.
"""

from __future__ import annotations

import importlib
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

#: Each backend by name, as `module:Class`, imported on first use (the docker backend needs the
#: `docker` client library, which a bwrap-only host may lack).
BACKENDS: dict[str, str] = {
    "docker": "workers.sandbox.docker_backend:DockerSandbox",
    "bwrap": "workers.sandbox.bwrap_backend:BwrapSandbox",
}

__all__ = [
    "BACKENDS",
    "Limits",
    "Mount",
    "Reason",
    "Sandbox",
    "SandboxError",
    "SandboxJob",
    "SandboxResult",
    "backend_class",
    "from_settings",
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
    return backend_class(name)(**options)


def backend_class(name: str) -> Any:
    """The class of backend `name` (`BACKENDS`).

    Raises:
        ValueError: Unknown backend name.
    """
    if name not in BACKENDS:
        raise ValueError(
            f"Unknown sandbox backend {name!r}. Expected one of {', '.join(BACKENDS)}."
        )
    module, _, attribute = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def from_settings(settings: Any, name: str | None = None) -> Sandbox:
    """The backend `name` (default: `settings.GRADER_SANDBOX`), configured from `settings`.

    A backend class with a `from_settings(settings)` classmethod reads its own settings there
    (docker: `GRADER_SANDBOX_IMAGE`); any other is built with its defaults.

    Raises:
        ValueError: Unknown backend name.
        SandboxError: The backend cannot run on this host (engine down, bwrap missing).
    """
    cls = backend_class(name or settings.GRADER_SANDBOX)
    build = getattr(cls, "from_settings", None)
    return build(settings) if build is not None else cls()


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
