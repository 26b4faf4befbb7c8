"""A sandbox started before its job: the exact job a cold one runs, waiting for its spec.

Importing Keras (TensorFlow, for train and evaluate) is most of a short stage's fixed cost. A
warm sandbox runs the stage's own `SandboxJob` (same folders, mounts, hidden paths, limits and
backend) with `WAIT_ENV` set: the runner imports Keras and its stage module, then waits for
``in/spec.json``. The host writes the job's inputs and the spec last (a rename), and the sandbox
runs that one job and exits: one job per fresh sandbox, as before; only the start moved ahead.
The stage's own wall-clock limit counts from the claim (enforced here); the sandbox's own limit
adds the waiting time. Used by `warm_build` (the next upload's build) and `warm_evaluate` (the
evaluation of the submission being trained).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from workers.pipeline.jobs import JobDirs, StageResources
from workers.runner.protocol import WAIT_ENV

logger = logging.getLogger(__name__)

#: Backends whose sandboxes die with their worker process (bubblewrap's ``--die-with-parent``).
#: Only they keep a warm train or evaluate sandbox: a container outlives a killed worker.
DIES_WITH_WORKER = ("bwrap",)


def dies_with_worker(sandbox: Any) -> bool:
    return getattr(sandbox, "name", "") in DIES_WITH_WORKER


def remove_orphans(jobs_root: Path, prefix: str) -> None:
    """Remove the folders ``<prefix><pid>-...`` of warm sandboxes whose worker process is gone
    (killed, recycled: bubblewrap's `--die-with-parent` ended the sandbox, nothing removed its
    folder)."""
    for folder in jobs_root.glob(f"{prefix}*"):
        pid = folder.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def waiting_job(job: Any, idle_seconds: float) -> Any:
    """`job` as a warm sandbox runs it: told to wait `idle_seconds` for its spec, with that
    wait added to its wall-clock limit."""
    limits = dataclasses.replace(
        job.limits, wall_seconds=float(job.limits.wall_seconds + idle_seconds + 5)
    )
    return dataclasses.replace(job, env={**job.env, WAIT_ENV: str(idle_seconds)}, limits=limits)


@dataclasses.dataclass
class WarmSandbox:
    """One started sandbox waiting for its job's spec."""

    dirs: JobDirs
    sandbox: Any
    resources: StageResources
    started: float
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: Any = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    claimed: bool = False
    _on_line: Any = None
    _lines: list[str] = dataclasses.field(default_factory=list)
    _line_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def launch(self, job: Any, idle_seconds: float, name: str) -> None:
        """Run `job` (waiting for its spec up to `idle_seconds`) in a daemon thread."""
        thread = threading.Thread(
            target=self._run, args=(waiting_job(job, idle_seconds),), name=name, daemon=True
        )
        thread.start()

    def _run(self, job: Any) -> None:
        try:
            self.result = self.sandbox.run(job, on_line=self._line, cancel=self.cancel)
        except Exception:  # a warm sandbox must never take the worker down
            logger.exception("A warm %s sandbox failed", self.dirs.root.name)
        finally:
            self.done.set()
            self.ended()

    def ended(self) -> None:
        """Called in the sandbox's thread once it exited (claimed or not)."""

    def _line(self, text: str) -> None:
        # Lines before the claim (none, normally) wait for the claimer's callback.
        with self._line_lock:
            if self._on_line is None:
                self._lines.append(text)
                return
        self._on_line(text)

    def wait(self, *, cancel: threading.Event | None, on_line: Any = None) -> Any:
        """Wait for the `SandboxResult` of the job whose spec was just written, streaming its
        stdout lines to `on_line`; the stage's wall-clock limit counts from now (past it, the
        result reads as a timeout)."""
        with self._line_lock:
            early, self._lines = self._lines, []
            self._on_line = on_line if on_line is not None else (lambda _text: None)
        for text in early:
            self._on_line(text)
        deadline = time.monotonic() + self.resources.wall_seconds
        timed_out = False
        while not self.done.wait(0.05):
            if cancel is not None and cancel.is_set():
                self.cancel.set()
            elif time.monotonic() > deadline and not timed_out:
                timed_out = True
                self.cancel.set()
        result = self.result
        if timed_out and result is not None and (cancel is None or not cancel.is_set()):
            result = dataclasses.replace(
                result,
                timed_out=True,
                reason="timeout",
                detail=f"The job ran past its wall-clock limit of {self.resources.wall_seconds} s.",
            )
        return result

    def discard(self) -> None:
        """Stop this sandbox."""
        self.cancel.set()


class ClaimedSandbox:
    """The sandbox backend a stage is given when it claimed a warm sandbox: its one job must be
    `expected` (by default the job the warm sandbox was started with); anything else runs cold
    on the real backend."""

    def __init__(self, warm: Any, expected: Any = None) -> None:
        self.warm = warm
        self.expected = expected if expected is not None else warm.job
        self.name = getattr(warm.sandbox, "name", "warm")
        self.used = False

    def run(self, job: Any, on_line: Any = None, cancel: threading.Event | None = None) -> Any:
        if self.used or job != self.expected:
            # Not the job it was started for (cannot happen after the claim's own check): stop
            # it before its spec matters, clear what it may have written, and run cold.
            self.warm.discard()
            self.warm.done.wait(60)
            for child in self.warm.dirs.out.iterdir():
                child.unlink()
            return self.warm.sandbox.run(job, on_line=on_line, cancel=cancel)
        self.used = True
        return self.warm.wait(cancel=cancel, on_line=on_line)
