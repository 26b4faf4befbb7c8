"""A warm train sandbox: TensorFlow imported, waiting for the next training.

Importing Keras on TensorFlow is about 4 s of every train stage (`workers.runner.keras_import`).
The gpu worker process starts the train sandbox of its next training ahead: when a training
starts while another submission of the assignment is on its way to training (its import then
overlaps this training, on a GPU host the GPU's work), else when the training ends. It runs
exactly the job a cold train stage of the same assignment runs (the training part of the
same dataset, the held-out part when the trusted trainer validates on it, the same limits, GPU,
backend and hidden paths), in a job folder of its own, with `WAIT_ENV` set
(`workers.pipeline.warm_sandbox`): the runner imports Keras and the train stage, then waits for
``in/spec.json``.

The next training claims it when its own cold job, computed for that folder, is equal to the one
the sandbox runs (else the sandbox is stopped and the stage runs cold). The claim makes the
folder the submission's own train folder: an earlier attempt's checkpoints are moved into its
``work`` (so a resumed training resumes, as a cold one does), the submission's old folder is
removed, and the warm folder is renamed to ``<jobs root>/<grading key>/train`` (the sandbox's
bind mounts follow the directories, not their names; the disk watch holds them open). From then
on everything is where a cold training puts it: checkpoints survive a killed worker there, the
evaluation reads the weights there. The host then writes the model config and the spec (last,
by a rename), and the sandbox runs that one job and exits: one job per fresh sandbox, as before.

Only on the bwrap backend: a bwrap sandbox dies with its worker process (`--die-with-parent`),
while a container outlives it and is found by the next attempt through its job's name, which
the renamed folder no longer matches. One per worker process; one left unclaimed for
`IDLE_SECONDS` exits and is replaced; `GRADER_WARM_TRAIN=false` turns it off. About 500 MB of
memory while it waits.
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

from workers.pipeline.jobs import JobDirs, StageResources, job_dirs
from workers.pipeline.train import train_job
from workers.pipeline.warm_sandbox import (
    ClaimedSandbox,
    WarmSandbox,
    dies_with_worker,
    remove_orphans,
)
from workers.sandbox import Mount
from workers.sandbox.hostdirs import prepare_writable_mounts

logger = logging.getLogger(__name__)

#: Seconds a warm sandbox waits for its job before it exits (and is replaced).
IDLE_SECONDS = 600.0
#: A warm sandbox this close to its idle deadline is not claimed (the runner may be leaving).
CLAIM_MARGIN_SECONDS = 30.0
#: Job folders of waiting warm train sandboxes live under the jobs root with this prefix.
PREFIX = "warm-train-"


@dataclasses.dataclass(frozen=True)
class TrainJob:
    """What decides a train stage's `SandboxJob`, apart from its folders."""

    train_dir: Path
    held_out_dir: Path | None
    sandbox: Any
    resources: StageResources
    gpu_device: str | None

    def job(self, dirs: JobDirs) -> Any:
        """The cold train stage's job in folders `dirs` (`workers.pipeline.train.run_train`)."""
        return train_job(
            dirs=dirs,
            train_dir=self.train_dir,
            held_out_dir=self.held_out_dir,
            resources=self.resources,
            gpu_device=self.gpu_device,
            sandbox=self.sandbox,
        )


@dataclasses.dataclass
class WarmTrain(WarmSandbox):
    """One started train sandbox waiting for its job (`workers.pipeline.warm_sandbox`)."""

    job: Any = None
    spec: TrainJob | None = None
    folder: Path = Path()

    def ended(self) -> None:
        if not self.claimed:
            shutil.rmtree(self.folder, ignore_errors=True)
            # Replaced only when it waited its time out (never in a loop of failing starts).
            if not self.cancel.is_set() and time.monotonic() - self.started >= IDLE_SECONDS:
                _replace(self)

    def usable(self, spec: TrainJob) -> bool:
        """Whether this sandbox runs exactly the cold job of `spec` (in its own folders)."""
        return (
            not self.done.is_set()
            and type(self.sandbox) is type(spec.sandbox)
            and getattr(self.sandbox, "image", None) == getattr(spec.sandbox, "image", None)
            and self.job == spec.job(self.dirs)
            and time.monotonic() - self.started < IDLE_SECONDS - CLAIM_MARGIN_SECONDS
        )


_lock = threading.Lock()
_waiting: WarmTrain | None = None


def enabled(sandbox: Any) -> bool:
    return bool(settings.GRADER_WARM_TRAIN) and dies_with_worker(sandbox)


def start(*, jobs_root: Path, spec: TrainJob) -> WarmTrain | None:
    """Start a warm train sandbox for the next training like `spec`, unless a usable one is
    waiting; off unless `enabled`."""
    global _waiting
    if not enabled(spec.sandbox):
        return None
    with _lock:
        if _waiting is not None:
            if _waiting.usable(spec):
                return _waiting
            _waiting.discard()
            _waiting = None
        remove_orphans(Path(jobs_root), PREFIX)
        folder = Path(jobs_root) / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            dirs = job_dirs(root=folder, key="next", stage="train")
            job = spec.job(dirs)
        except Exception:  # the next training runs cold, and says why if it fails too
            logger.exception("Could not start a warm train sandbox")
            shutil.rmtree(folder, ignore_errors=True)
            return None
        warm = WarmTrain(
            dirs=dirs,
            sandbox=spec.sandbox,
            resources=spec.resources,
            started=time.monotonic(),
            job=job,
            spec=spec,
            folder=folder,
        )
        _waiting = warm
    warm.launch(job, IDLE_SECONDS, "warm-train")
    return warm


def _replace(expired: WarmTrain) -> None:
    global _waiting
    with _lock:
        if _waiting is not expired:
            return
        _waiting = None
    if expired.spec is not None and expired.folder.parent.is_dir():  # (gone: a test's)
        start(jobs_root=expired.folder.parent, spec=expired.spec)


def claim(*, jobs_root: Path, key: str, spec: TrainJob) -> tuple[JobDirs, ClaimedSandbox] | None:
    """Take the waiting sandbox for the training of grading `key` if it runs exactly the cold
    job of `spec`, and make its folder that grading's train folder (see the module docstring);
    else None (the waiting one, if any, is stopped)."""
    global _waiting
    with _lock:
        warm, _waiting = _waiting, None
    if warm is None:
        return None
    if not (enabled(spec.sandbox) and warm.usable(spec)):
        warm.discard()
        return None
    target = Path(jobs_root) / key / "train"
    try:
        dirs = _adopt(warm, target)
    except OSError:
        logger.exception("Could not hand a warm train sandbox to %s; training cold", key)
        warm.discard()
        return None
    warm.claimed = True
    warm.dirs = dirs
    return dirs, ClaimedSandbox(warm, expected=spec.job(dirs))


def _adopt(warm: WarmTrain, target: Path) -> JobDirs:
    """Move an earlier attempt's checkpoints into the warm folder's ``work`` and rename the
    warm folder to `target`; returns the folders at their new place."""
    if target.exists():
        old_work = target / "work"
        if old_work.is_dir():
            for entry in old_work.iterdir():
                os.replace(entry, warm.dirs.work / entry.name)
            # Handed to the sandbox user without following links, as a cold start does.
            work = Mount(source=warm.dirs.work, target="/job/work", read_only=False)
            prepare_writable_mounts([work])
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for path in (target.parent, target.parent.parent):
        os.chmod(path, 0o755)  # noqa: S103 - traversable like a cold job's folders
    os.replace(warm.dirs.root, target)
    shutil.rmtree(warm.folder, ignore_errors=True)
    return JobDirs(root=target, input=target / "in", work=target / "work", out=target / "out")


def dirs_and_sandbox(
    *, use_warm: bool, given: Any, jobs_root: Path, key: str, spec: TrainJob
) -> tuple[JobDirs, Any]:
    """The train job's folders and the backend `run_train` runs it on: the claimed warm
    sandbox when `use_warm` and it fits, else the grading's own folders (checkpoints kept) and
    the `given` sandbox (or `spec`'s)."""
    claimed = claim(jobs_root=jobs_root, key=key, spec=spec) if use_warm else None
    if claimed is not None:
        return claimed
    dirs = job_dirs(root=jobs_root, key=key, stage="train")
    return dirs, given or spec.sandbox


def stop() -> None:
    """Stop the waiting warm sandbox, if any (a worker shutting down; tests)."""
    global _waiting
    with _lock:
        warm, _waiting = _waiting, None
    if warm is not None:
        warm.discard()
        warm.done.wait(30)
