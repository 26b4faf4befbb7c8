"""Host-side job directories and the `SandboxJob` of each stage.

Layout on the host: ``<jobs root>/<key>/<stage>/{in,work,out}``. Inside the sandbox:

- ``/job/in``   read-only: ``spec.json`` and the stage's inputs;
- ``/job/data`` read-only: for train, the training split WITHOUT its held-out validation part
  (``train-part/``); for evaluate only, the TEST split (evaluate never runs student code: it
  rebuilds the model from its JSON config, or opens an uploaded ``.keras`` with Keras' safe
  mode); nothing for build;
- ``/job/held-out`` read-only: the held-out validation part, for the trusted trainer's
  validation curves and the evaluate stage's own measurement; never for a stage that runs
  student code (build, custom training). Which examples are held out is chosen on the host with
  the secret dataset key, which no sandbox gets;
- ``/job/work`` read-write, kept between attempts: training checkpoints, so a re-run after a
  killed worker resumes;
- ``/job/out``  read-write: ``result.json``, read back size-capped without following links.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from grader.errors import GraderError
from grader.limits import check_values
from workers.pipeline.errors import InfrastructureError, StageAborted, StageFailed
from workers.runner.keras_import import BACKEND_UNAVAILABLE, NEEDS_TENSORFLOW
from workers.runner.protocol import PROGRESS_PREFIX
from workers.sandbox import Limits, Mount, SandboxJob
from workers.sandbox.environment import (
    PythonEnvironment,
    image_python_environment,
    python_environment,
    stage_hidden_paths,
)
from workers.sandbox.outputs import OutputRejected, collect_output, parse_untrusted_json

RESULT_FILENAME = "result.json"
RESULT_MAX_BYTES = 4 * 1024 * 1024
SANDBOX_JOB_ROOT = "/job"

STAGES = ("build", "train", "unpack", "evaluate")


@dataclass(frozen=True)
class JobDirs:
    """The host directories of one stage's job."""

    root: Path
    input: Path
    work: Path
    out: Path

    def write_spec(self, spec: dict[str, Any]) -> None:
        """Write ``spec.json`` into the input directory, whole at once (a rename): a warm
        sandbox (`workers.pipeline.warm_sandbox`) starts its job as soon as the file is there."""
        partial = self.input / ".spec.json.part"
        partial.write_text(json.dumps(spec), encoding="utf-8")
        os.replace(partial, self.input / "spec.json")


def job_dirs(*, root: Path, key: str, stage: str, fresh_output: bool = True) -> JobDirs:
    """Create (or reuse) the job directories of `stage` for the grading identified by `key`.

    `work` survives between attempts of the same grading (checkpoints); `in` and `out` are
    emptied so nothing from an earlier attempt is mistaken for this attempt's result.
    """
    if stage not in STAGES:
        raise ValueError(f"Unknown stage `{stage}`. Expected one of {', '.join(STAGES)}.")
    base = Path(root) / key / stage
    dirs = JobDirs(root=base, input=base / "in", work=base / "work", out=base / "out")
    for path in (dirs.input, dirs.out):
        if fresh_output and path.exists():
            shutil.rmtree(path)
    for path in (dirs.input, dirs.work, dirs.out):
        path.mkdir(parents=True, exist_ok=True)
    # The sandboxed user (uid 65534) must traverse down to the job and read its inputs; the
    # sandbox hands the writable `work` and `out` directories to that user itself.
    for path in (dirs.input, base, base.parent):
        os.chmod(path, 0o755)  # noqa: S103 - readable like a home directory, not writable
    return dirs


def remove_job_dirs(*, root: Path, key: str) -> None:
    """Delete every stage directory of one grading (checkpoints included)."""
    shutil.rmtree(Path(root) / key, ignore_errors=True)


@functools.cache
def host_python() -> PythonEnvironment:
    """This host's interpreter, code and libraries, to mount read-only (computed once)."""
    return python_environment()


def sandbox_python(sandbox: Any = None) -> PythonEnvironment:
    """How to run the runner in `sandbox`.

    The docker backend on a real sandbox image (`GRADER_SANDBOX_IMAGE`, built from
    `workers/sandbox/Dockerfile`) has its own interpreter and code; every other case (bwrap,
    docker on the empty local image) mounts this host's.
    """
    from workers.sandbox.images import LOCAL_IMAGE

    image = getattr(sandbox, "image", None)
    if getattr(sandbox, "name", "") == "docker" and image and image != LOCAL_IMAGE:
        return image_python_environment()
    return host_python()


@dataclass(frozen=True)
class StageResources:
    """The limits of one stage's sandbox."""

    wall_seconds: int
    memory_mb: int


def sandbox_job(
    *,
    stage: str,
    dirs: JobDirs,
    data_dir: Path | None,
    resources: StageResources,
    gpu_device: str | None = None,
    sandbox: Any = None,
    validation_dir: Path | None = None,
    keras_backend: str = "tensorflow",
) -> SandboxJob:
    """The sandbox job that runs ``python -m workers.runner STAGE /job``.

    Args:
        stage: `build`, `train`, `unpack` or `evaluate`.
        dirs: The stage's host directories.
        data_dir: The dataset split to mount at ``/job/data``: the training examples for
            train, the test split for evaluate (and only there).
        resources: Wall-clock and memory limits.
        gpu_device: The GPU this worker owns (train and evaluate only).
        sandbox: The backend that will run the job (decides where the interpreter comes from).
        validation_dir: The held-out validation part, mounted read-only at ``/job/held-out``:
            for the trusted trainer and the evaluate stage only, never with student code.
        keras_backend: ``KERAS_BACKEND`` in the sandbox; the runner honours a light one
            (``jax``, ``numpy``) for the build stage only (`workers.runner.keras_import`).

    Raises:
        ValueError: `validation_dir` for the build stage.
    """
    if (validation_dir is not None or data_dir is not None) and stage == "unpack":
        raise ValueError(
            "Stage `unpack` got a dataset. Expected none: it parses the student's archive."
        )
    if validation_dir is not None and stage == "build":
        raise ValueError(
            "Stage `build` got a validation split. Expected none: it runs student code."
        )
    mounts = [
        Mount(source=dirs.input, target=f"{SANDBOX_JOB_ROOT}/in", read_only=True),
        Mount(source=dirs.work, target=f"{SANDBOX_JOB_ROOT}/work", read_only=False),
        Mount(source=dirs.out, target=f"{SANDBOX_JOB_ROOT}/out", read_only=False),
    ]
    if data_dir is not None:
        mounts.append(Mount(source=Path(data_dir), target=f"{SANDBOX_JOB_ROOT}/data"))
    if validation_dir is not None:
        mounts.append(Mount(source=Path(validation_dir), target=f"{SANDBOX_JOB_ROOT}/held-out"))
    python = sandbox_python(sandbox)
    mounts.extend(python.mounts)
    hidden = stage_hidden_paths(stage, python)
    # Only what the runner needs; never the worker's environment (secrets, broker, database).
    env = {**python.env, "KERAS_BACKEND": keras_backend}
    if stage in ("train", "evaluate"):
        # The worker's choice (grader.training.backend); the runner selects it before Keras.
        backend = settings.GRADER_KERAS_BACKEND
        env.update(KERAS_BACKEND=backend, GRADER_KERAS_BACKEND=backend)
    limits = Limits(
        wall_seconds=resources.wall_seconds,
        memory_bytes=resources.memory_mb * 1024 * 1024,
    )
    return SandboxJob(
        argv=python.argv("-m", "workers.runner", stage, SANDBOX_JOB_ROOT),
        mounts=mounts,
        limits=limits,
        env=env,
        workdir=SANDBOX_JOB_ROOT,
        gpu_device=gpu_device if stage in ("train", "evaluate") else None,
        # Every attempt of this grading's stage shares the name (and the `work` folder).
        name=str(dirs.root),
        hidden=hidden,
    )


# Error codes the runner reports that mean "this file is not a model we accept".
_INVALID_CODES = {
    "invalid_model",
    "unsafe_layer",
    "unsupported_layer",
    "archive_rejected",
    "invalid_training_config",
    "invalid_submission",
}

_STAGE_WORDS = {
    "build": "The build",
    "train": "Training",
    "unpack": "Reading the archive's weights",
    "evaluate": "The evaluation",
}


def stage_log(result: Any) -> str:
    """A sandbox job's stdout and stderr, as stored and shown to the student.

    The runner's ``GRADER-PROGRESS {json}`` lines are left out (the page shows each epoch in
    its table already). Host paths are redacted (`workers.runner.redact`): a job mounts this
    host's interpreter and virtual environment at their own paths, and tracebacks would name
    them.
    """
    stdout = "".join(
        line
        for line in (result.stdout or "").splitlines(keepends=True)
        if not line.startswith(PROGRESS_PREFIX)
    )
    return stage_log_text(f"{stdout}{result.stderr or ''}")


def stage_log_text(text: str) -> str:
    """`text` (a message a job reported) with host paths redacted, as `stage_log` does."""
    from workers.runner.redact import redact_paths

    jobs = getattr(settings, "GRADER_JOBS_DIR", None)
    return redact_paths(text, [(str(jobs), "<jobs>")] if jobs else [])


def _output_tail(result: Any, limit: int = 4000) -> str:
    return stage_log(result)[-limit:]


def read_stage_result(
    *, stage: str, dirs: JobDirs, result: Any, resources: StageResources
) -> dict[str, Any]:
    """Turn a `SandboxResult` and ``result.json`` into the stage's payload, or raise.

    Raises:
        StageAborted: The job was cancelled (its worker no longer owns the submission).
        InfrastructureError: The sandbox itself failed (retried).
        StageFailed: A verdict: the job ran out of time or memory, crashed, printed too much,
            or the runner reported a failure caused by the submission.
    """
    log = stage_log(result)
    what = _STAGE_WORDS[stage]
    reason = result.reason
    if reason == "cancelled":
        raise StageAborted(f"The {stage} sandbox was stopped: {result.detail}")
    if reason == "infrastructure":
        # The backend's detail says why (an image not built, the engine down) and the fix.
        detail = stage_log_text(str(result.detail or "")).strip()
        message = f"The {stage} sandbox could not run the job."
        raise InfrastructureError(f"{message} {detail}" if detail else message, log=log)
    if reason == "timeout":
        raise StageFailed(
            "timeout",
            f"{what} ran for more than {resources.wall_seconds:,} seconds. "
            f"Expected it to finish within the limit of {resources.wall_seconds:,} seconds.",
            log=log,
        )
    if reason == "out_of_memory":
        raise StageFailed(
            "out_of_memory",
            f"{what} used more memory than the limit of {resources.memory_mb:,} MB.",
            log=log,
        )
    if reason == "output_limit":
        raise StageFailed(
            "output_limit",
            f"{what} printed more output than allowed; it was stopped. "
            "Expected little console output (remove print statements in loops).",
            log=log,
        )
    if reason == "crashed" or (result.exit_code not in (0, None)):
        _raise_if_disk_full(stage, dirs, log)
        detail = (
            f"signal {result.signal}"
            if getattr(result, "signal", None)
            else f"exit code {result.exit_code}"
        )
        raise StageFailed("crashed", f"{what} process crashed ({detail}).", log=log)
    try:
        files = collect_output(dirs.out, RESULT_MAX_BYTES)
    except OutputRejected as exc:
        raise StageFailed(
            "crashed", f"{what} left output the grader refuses: {exc}", log=log
        ) from exc
    raw = files.get(RESULT_FILENAME)
    if raw is None:
        _raise_if_disk_full(stage, dirs, log)
        raise StageFailed(
            "crashed",
            f"{what} ended without writing `{RESULT_FILENAME}`. Expected the runner's result.",
            log=log,
        )
    try:
        payload = parse_untrusted_json(raw)
    except OutputRejected as exc:
        raise StageFailed(
            "crashed", f"{what} wrote an unreadable result ({exc}).", log=log
        ) from exc
    if not isinstance(payload, dict):
        raise StageFailed("crashed", f"{what} wrote a result that is not a JSON object.", log=log)
    try:
        # Student code may have written the result itself (build; custom training): every
        # value must be one the analysis and the database take, or the stage would end as an
        # infrastructure error when storing it, after retries.
        check_values(payload)
    except GraderError as exc:
        raise StageFailed(
            "invalid_submission" if stage == "build" else "crashed",
            f"{what} produced output the grader refuses. {exc.message}",
            log=log,
        ) from exc
    if payload.get("ok") is True:
        return payload
    error = payload.get("error") or {}
    error_code = str(error.get("kind", "error"))
    message = stage_log_text(str(error.get("message", ""))) or f"{what} failed ({error_code})."
    if error_code in _INVALID_CODES:
        raise StageFailed("invalid_submission", message, log=log)
    if stage == "build" and error_code in (NEEDS_TENSORFLOW, BACKEND_UNAVAILABLE):
        # Not a verdict: `workers.pipeline.build` builds the module again on TensorFlow.
        raise StageFailed(NEEDS_TENSORFLOW, message, log=log)
    raise StageFailed("build_error" if stage == "build" else "crashed", message, log=log)


#: A job's folders count as out of space below this many free bytes (or 1 % of the disk, if less).
DISK_FULL_FREE_BYTES = 64 * 1024 * 1024


def disk_full(path: Path) -> tuple[bool, int]:
    """Whether the filesystem holding `path` is (nearly) out of space, and its free bytes.

    Measured on the host after a job failed: a write that ran out of space leaves the disk full
    (the partial file stays), whatever the job printed. False when it cannot be measured.
    """
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return False, -1
    return usage.free < min(DISK_FULL_FREE_BYTES, usage.total // 100), usage.free


def _raise_if_disk_full(stage: str, dirs: JobDirs, log: str) -> None:
    """A job that crashed (or wrote no result) on a full jobs disk failed because of us: retry.

    Checkpoints and results go to the job's writable folders (under `GRADER_JOBS_DIR`); a write
    failing there with ENOSPC is not the submission's fault, so it is an infrastructure error
    (retried with backoff, resuming from the last checkpoint that was written whole), never a
    `crashed` verdict.
    """
    for folder in (dirs.work, dirs.out):
        full, free = disk_full(folder)
        if full:
            raise InfrastructureError(
                f"The {stage} job stopped while the disk of the jobs folder was full "
                f"({free:,} bytes free). Expected free space for its checkpoints and "
                "result (GRADER_JOBS_DIR); it is retried once space is freed.",
                log=log,
            )


def protocol_record(line: str) -> dict[str, Any] | None:
    """The object of a ``GRADER-PROGRESS {json}`` stdout line; None for any other line.

    A malformed protocol line is None too: the student controls stdout in custom training, so
    a fake line must not break the host (values are validated when stored).
    """
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        record = parse_untrusted_json(line[len(PROGRESS_PREFIX) :])
    except OutputRejected:
        return None
    return record if isinstance(record, dict) else None
