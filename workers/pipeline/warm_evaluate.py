"""A warm evaluate sandbox: started while its submission trains, waiting for the weights.

When the train stage of a submission starts, the gpu worker process starts that submission's
evaluate sandbox (`workers.pipeline.warm_sandbox`): exactly the job a cold evaluate runs (the
same job folder, the test split and the held-out part of that dataset, the same limits, GPU and
backend), which imports Keras and waits for ``in/spec.json``. The evaluate stage of that same
grading claims it if every setting still matches (else it is stopped and the stage runs cold).
The evaluate runner never runs student code, so mounting the test split early changes nothing;
the sandbox is never handed another submission's job.

One per worker process. It is stopped when the train stage fails or loses its submission
(cancelled, regraded, re-queued), when this process starts another training or evaluates
something else, when its evaluation does not claim it within `CLAIM_SECONDS` of the training's
end (another worker took it, a cancel came between the stages), when the worker process shuts
down (`stop`), or once it waited `idle_seconds` (the train stage's own limit). A worker process
that dies takes it along (bubblewrap's ``--die-with-parent``): only the bwrap backend starts one
(`warm_sandbox.dies_with_worker`; a container would outlive its killed worker).
`GRADER_WARM_EVALUATE=false` turns it off.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from workers.pipeline.evaluate import evaluate_job as cold_evaluate_job
from workers.pipeline.jobs import JobDirs, StageResources, job_dirs
from workers.pipeline.warm_sandbox import ClaimedSandbox, WarmSandbox, dies_with_worker

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class WarmEvaluate(WarmSandbox):
    """The evaluate sandbox of one grading (`key`), waiting for its spec."""

    key: str = ""
    job: Any = None
    deadline: float = 0.0

    def usable(self, *, key: str, job: Any) -> bool:
        return (
            not self.done.is_set()
            and self.key == key
            and self.job == job
            and time.monotonic() < self.deadline
        )


#: Seconds a trained submission's warm sandbox waits for its evaluate stage to claim it.
CLAIM_SECONDS = 120.0

_lock = threading.Lock()
_waiting: WarmEvaluate | None = None


def enabled(sandbox: Any) -> bool:
    return bool(settings.GRADER_WARM_EVALUATE) and dies_with_worker(sandbox)


def evaluate_job(
    *,
    jobs_root: Path,
    key: str,
    test_dir: Path,
    held_out_dir: Path | None,
    sandbox: Any,
    resources: StageResources,
    gpu_device: str | None,
    fresh: bool,
) -> tuple[Any, Any]:
    """The evaluate stage's job directories and `SandboxJob` (train mode), as a cold one has."""
    dirs = job_dirs(root=jobs_root, key=key, stage="evaluate", fresh_output=fresh)
    job = cold_evaluate_job(
        dirs=dirs,
        test_dir=test_dir,
        held_out_dir=held_out_dir,
        resources=resources,
        gpu_device=gpu_device,
        sandbox=sandbox,
    )
    return dirs, job


def start(*, idle_seconds: float, **arguments: Any) -> WarmEvaluate | None:
    """Start the evaluate sandbox of grading `key` (see `evaluate_job` for the arguments),
    stopping any other one; it waits up to `idle_seconds` for its job."""
    global _waiting
    stop()
    try:
        dirs, job = evaluate_job(fresh=True, **arguments)
    except Exception:  # the stage will run cold, and say why
        logger.exception("Could not start a warm evaluate sandbox")
        return None
    warm = WarmEvaluate(
        dirs=dirs,
        sandbox=arguments["sandbox"],
        resources=arguments["resources"],
        started=time.monotonic(),
        key=arguments["key"],
        job=job,
        deadline=time.monotonic() + idle_seconds - 5,
    )
    with _lock:
        _waiting = warm
    warm.launch(job, idle_seconds, "warm-evaluate")
    return warm


def after_training(*, succeeded: bool) -> None:
    """The train stage of the waiting sandbox's submission ended: stop the sandbox unless it
    succeeded, and in any case unless its evaluation claims it within `CLAIM_SECONDS` (another
    worker took it, the submission was cancelled meanwhile)."""
    with _lock:
        warm = _waiting
    if warm is None:
        return
    if not succeeded:
        stop()
        return
    timer = threading.Timer(CLAIM_SECONDS, _expire, args=(warm,))
    timer.daemon = True
    timer.start()


def _expire(warm: WarmEvaluate) -> None:
    global _waiting
    with _lock:
        if _waiting is not warm:
            return
        _waiting = None
    warm.discard()


def claim(**arguments: Any) -> WarmEvaluate | None:
    """Take the waiting sandbox if it was started for this very job (see `evaluate_job`), else
    None (and stop it, waiting until it exited)."""
    global _waiting
    with _lock:
        warm, _waiting = _waiting, None
    if warm is None:
        return None
    if not enabled(arguments["sandbox"]):
        warm.discard()
        warm.done.wait(60)
        return None
    _dirs, job = evaluate_job(fresh=False, **arguments)
    if not warm.usable(key=arguments["key"], job=job):
        warm.discard()
        warm.done.wait(60)
        return None
    warm.claimed = True
    return warm


def dirs_and_sandbox(use_warm: bool, given: Any, **arguments: Any) -> tuple[JobDirs, Any]:
    """The evaluate job's folders and the backend `run_evaluate` runs it on: the claimed warm
    sandbox when `use_warm` and it fits (see `evaluate_job`), else fresh folders and the `given`
    sandbox (or the worker's own)."""
    warm = claim(**arguments) if use_warm else None
    if warm is not None:
        return warm.dirs, ClaimedSandbox(warm)
    dirs = job_dirs(root=arguments["jobs_root"], key=arguments["key"], stage="evaluate")
    return dirs, given or arguments["sandbox"]


def stop() -> None:
    """Stop the waiting sandbox, if any, and wait until it exited."""
    global _waiting
    with _lock:
        warm, _waiting = _waiting, None
    if warm is not None:
        warm.discard()
        warm.done.wait(30)
