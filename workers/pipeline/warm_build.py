"""A warm build sandbox: started before its upload, Keras imported, waiting for one job.

Importing Keras is most of a light build's time (`workers.runner.keras_import`). After a build,
the worker process starts the next build's sandbox at once: exactly the job `run_build` would
start (its own job folder with empty ``in``, ``work`` and ``out``; no data; the same hidden
paths, limits and backend), with `WAIT_ENV` set, so that the runner imports Keras and the build
stage, then waits for ``in/spec.json``. The next upload's build claims it: the host writes the
module into its ``in`` folder, the spec last (a rename), and the sandbox builds and exits. One
job per fresh sandbox, as before; only the start moved ahead. The build's own wall-clock limit
counts from the claim (enforced here); the sandbox's limit adds the waiting time.

A warm sandbox left unclaimed for `IDLE_SECONDS` exits and is replaced, so a worker process
that builds keeps one ready (about 250 MB of memory and one Keras import per idle period);
`GRADER_WARM_BUILD=false` turns it off.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings

from workers.pipeline.jobs import StageResources, job_dirs, sandbox_job
from workers.pipeline.warm_sandbox import WarmSandbox, remove_orphans

logger = logging.getLogger(__name__)

#: Seconds a warm sandbox waits for its job before it exits (and is replaced).
IDLE_SECONDS = 600.0
#: A warm sandbox this close to its idle deadline is not claimed (the runner may be leaving).
CLAIM_MARGIN_SECONDS = 30.0
#: Job folders of warm sandboxes live under the jobs root with this prefix.
PREFIX = "warm-build-"


@dataclasses.dataclass
class WarmBuild(WarmSandbox):
    """One started build sandbox waiting for its job (`workers.pipeline.warm_sandbox`)."""

    backend: str = ""

    def _start(self, idle_seconds: float) -> None:
        job = sandbox_job(
            stage="build",
            dirs=self.dirs,
            data_dir=None,
            resources=self.resources,
            sandbox=self.sandbox,
            keras_backend=self.backend,
        )
        self.launch(job, idle_seconds, "warm-build")

    def ended(self) -> None:
        if not self.claimed:
            shutil.rmtree(self.dirs.root.parent.parent, ignore_errors=True)
            # Replaced only when it waited its time out (never in a loop of failing starts).
            if not self.cancel.is_set() and time.monotonic() - self.started >= IDLE_SECONDS:
                _replace(self)

    def usable(self, *, sandbox: Any, backend: str, resources: StageResources) -> bool:
        """Whether this sandbox can run a build of `backend` with `resources` now."""
        return (
            not self.done.is_set()
            and type(self.sandbox) is type(sandbox)
            and getattr(self.sandbox, "image", None) == getattr(sandbox, "image", None)
            and self.backend == backend
            and self.resources == resources
            and time.monotonic() - self.started < IDLE_SECONDS - CLAIM_MARGIN_SECONDS
        )

    def run(self, *, source: str, spec: dict[str, Any], cancel: threading.Event | None) -> Any:
        """Hand this sandbox its job and wait for the `SandboxResult`; the build's wall-clock
        limit counts from now (past it, the result reads as a timeout)."""
        (self.dirs.input / "submission.py").write_text(source, encoding="utf-8")
        self.dirs.write_spec(spec)
        return self.wait(cancel=cancel)


_lock = threading.Lock()
_waiting: WarmBuild | None = None
_pending: threading.Timer | None = None
#: Counts `stop` calls: a start scheduled before one does not happen.
_generation = 0


def enabled() -> bool:
    return bool(settings.GRADER_WARM_BUILD)


def start_later(
    *, sandbox: Any, jobs_root: Path, backend: str, resources: StageResources, delay: float
) -> None:
    """`start` in `delay` seconds, off this thread: the upload just built gets its static
    verdict (the check stage) before the next sandbox's Keras import takes a CPU."""
    global _pending
    with _lock:
        if _pending is not None:
            _pending.cancel()
        arguments = {"sandbox": sandbox, "jobs_root": jobs_root, "backend": backend}
        arguments.update(resources=resources, generation=_generation)
        timer = threading.Timer(delay, start, kwargs=arguments)
        timer.daemon = True
        _pending = timer
    timer.start()


def waiting(timeout: float = 0.0) -> WarmBuild | None:
    """The warm sandbox waiting for a job, waiting up to `timeout` seconds for one to start."""
    deadline = time.monotonic() + timeout
    while True:
        with _lock:
            if _waiting is not None or time.monotonic() >= deadline:
                return _waiting
        time.sleep(0.05)


def start(
    *,
    sandbox: Any,
    jobs_root: Path,
    backend: str,
    resources: StageResources,
    generation: int | None = None,
) -> WarmBuild | None:
    """Start a warm build sandbox for the next upload, unless a usable one is waiting (or
    `stop` was called since `generation`)."""
    global _waiting
    with _lock:
        if generation is not None and generation != _generation:
            return None
        if _waiting is not None:
            if _waiting.usable(sandbox=sandbox, backend=backend, resources=resources):
                return _waiting
            _waiting.discard()
        remove_orphans(Path(jobs_root), PREFIX)
        root = Path(jobs_root) / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        dirs = job_dirs(root=root, key="warm", stage="build")
        warm = WarmBuild(
            dirs=dirs,
            backend=backend,
            sandbox=sandbox,
            resources=resources,
            started=time.monotonic(),
        )
        _waiting = warm
        warm._start(IDLE_SECONDS)
        return warm


def _replace(expired: WarmBuild) -> None:
    global _waiting
    with _lock:
        if _waiting is not expired:
            return
        _waiting = None
    start(
        sandbox=expired.sandbox,
        jobs_root=expired.dirs.root.parent.parent.parent,
        backend=expired.backend,
        resources=expired.resources,
    )


def claim(*, sandbox: Any, backend: str, resources: StageResources) -> WarmBuild | None:
    """Take the waiting warm sandbox if it fits this build, else None (and stop it)."""
    global _waiting
    with _lock:
        warm, _waiting = _waiting, None
    if warm is None:
        return None
    if not warm.usable(sandbox=sandbox, backend=backend, resources=resources):
        warm.discard()
        return None
    warm.claimed = True
    return warm


def finish(warm: WarmBuild) -> None:
    """Remove a claimed sandbox's job folder once its result has been read."""
    shutil.rmtree(warm.dirs.root.parent.parent, ignore_errors=True)


def stop() -> None:
    """Stop the waiting warm sandbox, if any, and one about to start (a worker shutting down;
    tests)."""
    global _waiting, _pending, _generation
    with _lock:
        _generation += 1
        warm, _waiting = _waiting, None
        if _pending is not None:
            _pending.cancel()
            _pending = None
    if warm is not None:
        warm.discard()
        warm.done.wait(30)
