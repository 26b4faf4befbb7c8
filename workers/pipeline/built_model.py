"""The host's check that the network a sandbox built is the network the grader analysed.

The train and evaluate runners rebuild the model with Keras from the stored config; the check
stage analysed that config without Keras (`grader.analysis`). Their first protocol record is
``{"built_model": ...}``: what Keras built, described by the runner's own code before any student
code is imported (`workers.runner.train`). `run_checked_job` runs such a job and compares that
report with the stored analysis (`grader.build_check`) as soon as its line arrives:

- a difference stops the sandbox at once (before the first epoch is trained, usually before
  the data is loaded) and ends the grading `failed/invalid_submission`: the student reads a
  plain sentence (`BuiltModelMismatch`), the instructor the differences
  (`Result.checks["built_model"]`);
- only the first report counts, and only before the first epoch: with custom training the
  student's code runs later in the same process and can print anything, but not before it;
- an epoch line before any report (or a report that does not follow the contract) means the
  sandbox did not run this host's runner (a sandbox image older than the worker): an
  infrastructure error, not retried, never the student's verdict; the job is stopped too. A job
  that ends without a report fails with its own verdict if it has one (a config Keras refuses,
  a timeout, a crash), else (a successful result, unreported) as that infrastructure error.

No epoch of a network that differs is ever passed on (`on_epoch`) or read from its result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from grader.build_check import (
    BuiltModelReport,
    Difference,
    MalformedBuildReport,
    compare_with_analysis,
    describe_differences,
)
from workers.pipeline.errors import InfrastructureError, StageAborted, StageFailed
from workers.pipeline.jobs import (
    JobDirs,
    StageResources,
    protocol_record,
    read_stage_result,
    stage_log,
)
from workers.runner.protocol import BUILT_MODEL_KEY
from workers.sandbox.base import CANCEL_POLL_SECONDS

#: The key of `Result.checks` (and of the `grade` report's `checks`) holding the differences.
CHECKS_KEY = "built_model"

WAITING = "waiting"
MATCHED = "matched"
DIFFERENT = "different"
UNREPORTED = "unreported"
MALFORMED = "malformed"


class BuiltModelMismatch(StageFailed):
    """Keras built another network than the one the grader analysed: the file is refused.

    `message` is the student's plain sentence; `details[CHECKS_KEY]` holds the differences for
    instructors: ``{"matches": false, "stage", "differences": [sentence, ...]}``.
    """

    def __init__(self, differences: list[Difference], *, stage: str, log: str = "") -> None:
        layer = next((d.layer for d in differences if d.layer), None)
        where = f" (layer `{layer}`)" if layer else ""
        super().__init__(
            "invalid_submission",
            "Your model could not be graded: the network Keras builds from it differs from the "
            f"one the grader analysed{where}. Expected a model saved by Keras itself "
            "(`model.to_json()`, `model.save(...)`, or returned by `build_model`) and not "
            "edited by hand; if yours is, ask your instructor, who can see the details.",
            log=log,
            details={
                CHECKS_KEY: {
                    "matches": False,
                    "stage": stage,
                    "differences": describe_differences(differences),
                }
            },
        )
        self.differences = differences


class BuiltModelGate:
    """Reads a running job's protocol lines: the first report decides, epochs pass only after.

    `on_line` runs in the sandbox's reader thread, in order; it sets `stop` (the sandbox's
    cancel event) as soon as the job must not go on.
    """

    def __init__(
        self,
        *,
        analysis: Mapping[str, Any],
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.analysis = analysis
        self.on_epoch = on_epoch
        self.stop = threading.Event()
        self.state = WAITING
        self.differences: list[Difference] = []
        self.problem = ""

    def on_line(self, line: str) -> None:
        """Take one stdout line of the job (other lines and malformed records are ignored)."""
        record = protocol_record(line)
        if record is None:
            return
        if BUILT_MODEL_KEY in record:
            if self.state == WAITING:  # later reports may come from student code: ignored
                self._judge(record[BUILT_MODEL_KEY])
            return
        if not isinstance(record.get("epoch"), int):
            return
        if self.state == WAITING:
            self._refuse(UNREPORTED, "an epoch arrived before any report of the built network")
        elif self.state == MATCHED and self.on_epoch is not None:
            self.on_epoch(record)

    def _judge(self, raw: Any) -> None:
        try:
            report = BuiltModelReport.from_dict(raw)
        except MalformedBuildReport as exc:
            self._refuse(MALFORMED, f"its report of the built network is malformed: {exc}")
            return
        self.differences = compare_with_analysis(self.analysis, report)
        if self.differences:
            self.state = DIFFERENT
            self.stop.set()
        else:
            self.state = MATCHED

    def _refuse(self, state: str, problem: str) -> None:
        self.state, self.problem = state, problem
        self.stop.set()


@contextmanager
def _forwarding(source: threading.Event | None, target: threading.Event) -> Iterator[None]:
    """Set `target` as soon as `source` is set, while the block runs."""
    if source is None:
        yield
        return
    done = threading.Event()

    def forward() -> None:
        while not done.is_set():
            if source.wait(CANCEL_POLL_SECONDS):
                target.set()
                return

    thread = threading.Thread(target=forward, name="built-model-cancel", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def run_checked_job(
    *,
    stage: str,
    sandbox: Any,
    job: Any,
    dirs: JobDirs,
    resources: StageResources,
    analysis: Mapping[str, Any] | None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[dict[str, Any], Any]:
    """Run a train or evaluate job whose built network must match `analysis`.

    Args:
        stage: `train` or `evaluate`.
        sandbox: The backend.
        job: The `SandboxJob`.
        dirs: The job's directories (its result is read from ``out``).
        resources: The job's limits (for the verdict's wording).
        analysis: The `check_model` object the check stage stored (its ``layers`` and
            ``params``).
        on_epoch: Called with each epoch record, once the report matched.
        cancel: Set from another thread to kill the sandbox (the worker lost the submission).

    Returns:
        The job's result payload and the `SandboxResult`.

    Raises:
        BuiltModelMismatch: Keras built another network (`failed/invalid_submission`).
        StageAborted: `cancel` was set.
        InfrastructureError: No analysis to compare with, or the job did not report what it
            built (not retried), or the sandbox failed.
        StageFailed: Any other verdict of the job (timeout, crash, a config Keras refuses).
    """
    if not isinstance(analysis, Mapping) or not isinstance(analysis.get("layers"), list):
        raise InfrastructureError(
            f"The {stage} stage has no stored analysis of the model to compare the built "
            "network with. Expected the check stage's result; regrade the submission.",
            retry=False,
        )
    gate = BuiltModelGate(analysis=analysis, on_epoch=on_epoch)
    with _forwarding(cancel, gate.stop):
        result = sandbox.run(job, on_line=gate.on_line, cancel=gate.stop)
    if cancel is not None and cancel.is_set():
        raise StageAborted(f"The {stage} sandbox was stopped: {result.detail}")
    log = stage_log(result)
    if gate.state == DIFFERENT:
        raise BuiltModelMismatch(gate.differences, stage=stage, log=log)
    if gate.state in (UNREPORTED, MALFORMED):
        raise _unreported(stage, gate.problem, log)
    payload = read_stage_result(stage=stage, dirs=dirs, result=result, resources=resources)
    if gate.state != MATCHED:
        raise _unreported(stage, "it finished without reporting the built network", log)
    return payload, result


def _unreported(stage: str, problem: str, log: str) -> InfrastructureError:
    return InfrastructureError(
        f"The {stage} sandbox did not run this grader's runner: {problem}. Expected its first "
        "line to describe the network Keras built, before any student code runs. Is the sandbox "
        "image older than the workers (GRADER_SANDBOX_IMAGE)? Rebuild it, then regrade.",
        log=log,
        retry=False,
    )
