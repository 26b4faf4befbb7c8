"""Build: turn the uploaded file into a Keras model config (JSON), safely.

- ``.py``: the student's `build_model(input_shape, num_classes)` runs inside the sandbox
  (``python -m workers.runner build /job``); only its JSON config comes back.
- ``.ipynb``: the same, for the module made of the notebook's imports and definitions
  (`workers.pipeline.source_build`); a failure's message names notebook cells.
- ``.json`` / ``.keras``: the config is read on the host by `grader.loading`, which parses JSON
  and zip members without ever calling Keras: no student code runs at all.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from grader.errors import GraderError
from workers.pipeline import warm_build
from workers.pipeline.errors import InfrastructureError, StageFailed
from workers.pipeline.jobs import (
    JobDirs,
    StageResources,
    job_dirs,
    read_stage_result,
    sandbox_job,
    stage_log,
)
from workers.pipeline.source_build import SOURCE_FORMATS, explain_failure, prepare_source
from workers.runner.keras_import import BACKEND_UNAVAILABLE, LIGHT_BACKENDS, NEEDS_TENSORFLOW

logger = logging.getLogger(__name__)

#: Seconds after a light build before the next upload's warm sandbox starts (`warm_build`).
WARM_START_DELAY_SECONDS = 2.0
#: Light-backend build failures that the same module built on TensorFlow may not have.
LIGHT_RETRY_REASONS = frozenset({NEEDS_TENSORFLOW, BACKEND_UNAVAILABLE, "out_of_memory", "crashed"})
#: Light backends this worker process found missing in its sandbox (no JAX in the image).
_unavailable_backends: set[str] = set()
#: A module that names TensorFlow (`import tensorflow`, `tf_keras`) is built on TensorFlow.
TENSORFLOW_MENTION = re.compile(r"\b(tensorflow|tf_keras)\b")

SUBMISSION_MODULE = "submission.py"
DEFAULT_BUILD_SECONDS = 300
DEFAULT_BUILD_MEMORY_MB = 4096


@dataclass(frozen=True)
class BuildOutput:
    """What the build stage produced."""

    model_config: dict[str, Any]
    training_config: dict[str, Any] | None
    log: str = ""
    #: What the grader read from a `.py`/`.ipynb` (`PreparedSource.report`), else None.
    source: dict[str, Any] | None = None


def submission_format(path: Path) -> str:
    """`py`, `ipynb`, `json` or `keras` from the file name (the upload service checked content)."""
    from grader.loading import SUBMISSION_SUFFIXES, unsupported_extension_message

    suffix = Path(path).suffix.lower()
    if suffix not in SUBMISSION_SUFFIXES:
        # The same words as the site's upload check (`validate_upload`).
        raise StageFailed(
            "invalid_submission", unsupported_extension_message(Path(path).name, suffix)
        )
    return suffix.lstrip(".")


def read_static_config(path: Path) -> dict[str, Any]:
    """Read the model config of a `.json` or `.keras` upload without Keras (host side, safe).

    Raises:
        StageFailed: `invalid_submission` when the file is not a readable, safe model config.
    """
    from grader.loading import load_model_config

    try:
        return load_model_config(Path(path))
    except GraderError as exc:
        raise StageFailed("invalid_submission", exc.message) from exc


def run_build(
    *,
    path: Path,
    input_shape: Sequence[int],
    num_classes: int,
    dirs: JobDirs | None,
    sandbox: Any,
    resources: StageResources,
    cancel: threading.Event | None = None,
    warm_root: Path | None = None,
) -> BuildOutput:
    """Run the build stage for one uploaded file.

    Args:
        path: The uploaded file on the host.
        input_shape: The dataset's image shape, passed to `build_model`.
        num_classes: The dataset's class count, passed to `build_model`.
        dirs: The build job's directories (needed for `.py` only).
        sandbox: The sandbox backend (needed for `.py` only).
        resources: The build sandbox's limits.
        cancel: Set from another thread to kill the sandbox (the worker lost the submission).
        warm_root: Where this worker process keeps a warm build sandbox for the next upload
            (`workers.pipeline.warm_build`; a light build claims the waiting one); None: none.

    Raises:
        StageFailed: The file is invalid or `build_model` failed (`build_error`, `timeout`, ...).
        StageAborted: `cancel` was set; the sandbox was killed.
        InfrastructureError: The sandbox failed.
    """
    file_format = submission_format(path)
    if file_format not in SOURCE_FORMATS:
        return BuildOutput(model_config=read_static_config(path), training_config=None)
    if dirs is None or sandbox is None:
        raise ValueError("Building a `.py` submission needs job directories and a sandbox.")
    prepared = prepare_source(path, file_format)
    # The module as read within bounds (a `.py`), or the code a notebook's cells define.
    (dirs.input / SUBMISSION_MODULE).write_text(prepared.source, encoding="utf-8")
    spec = {
        "stage": "build",
        "submission": SUBMISSION_MODULE,
        "input_shape": [int(v) for v in input_shape],
        "num_classes": int(num_classes),
    }
    dirs.write_spec(spec)
    backend = build_backend(prepared.source)
    # What the host's reading of the source finds (a limited child interpreter): meanwhile.
    report: dict[str, Any] = {}
    reading = threading.Thread(target=lambda: report.update(prepared.report()), daemon=True)
    reading.start()
    warm = None
    if warm_root is not None and backend != "tensorflow" and warm_build.enabled():
        warm = warm_build.claim(sandbox=sandbox, backend=backend, resources=resources)
    try:
        try:
            if warm is not None:
                payload, result = _run_warm_build_job(warm, prepared.source, spec, cancel)
            else:
                payload, result = _run_build_job(dirs, sandbox, resources, cancel, backend)
        except StageFailed as exc:
            if exc.reason not in LIGHT_RETRY_REASONS or backend == "tensorflow":
                raise
            if exc.reason == BACKEND_UNAVAILABLE:
                logger.warning("Building on TensorFlow from now on: %s", exc.message)
                _unavailable_backends.add(backend)
            # The module imports TensorFlow after all, or the light backend ran out of memory
            # (Keras' numpy backend infers shapes by computing each layer on a batch of 83):
            # a fresh sandbox, on TensorFlow.
            for folder in (dirs.out, dirs.work):
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True, exist_ok=True)
            payload, result = _run_build_job(dirs, sandbox, resources, cancel, "tensorflow")
    except StageFailed as exc:
        if exc.reason in (NEEDS_TENSORFLOW, BACKEND_UNAVAILABLE):  # student code, on TensorFlow
            exc = StageFailed("build_error", exc.message, log=exc.log)
        reading.join()
        raise explain_failure(exc, prepared) from exc
    finally:
        if warm is not None:
            warm_build.finish(warm)
        if warm_root is not None and backend != "tensorflow" and warm_build.enabled():
            # The next upload's sandbox starts while this one's training runs.
            warm_build.start_later(
                sandbox=sandbox,
                jobs_root=warm_root,
                backend=backend,
                resources=resources,
                delay=WARM_START_DELAY_SECONDS,
            )
    config = payload.get("model_config")
    if not isinstance(config, dict):
        raise StageFailed(
            "build_error", "`build_model` produced no model config. Expected a keras.Model."
        )
    training = payload.get("training_config")
    return BuildOutput(
        model_config=config,
        training_config=training if isinstance(training, dict) else None,
        log=stage_log(result),
        source=_joined(reading, report, prepared),
    )


def _joined(reading: threading.Thread, report: dict[str, Any], prepared: Any) -> dict[str, Any]:
    reading.join()
    # The thread's failure (it raised) leaves `report` empty: read again here, raising here.
    return report or prepared.report()


def build_backend(source: str) -> str:
    """The Keras backend to build `source` on: `GRADER_BUILD_KERAS_BACKEND` (``numpy`` unless
    set, or ``jax``; both need JAX in the sandbox; ``tensorflow`` turns the light build off), or
    TensorFlow when the module names TensorFlow anywhere (a module that imports it in a way this
    does not see is built again on TensorFlow, see `run_build`).

    TensorFlow's import is most of a build's time on the 2-core CI machine; Keras 3 builds and
    serialises the same model config on its numpy backend without it (on JAX too, but JAX
    compiles every weight initializer: more CPU than TensorFlow for a small model).
    """
    # An empty value (`GRADER_BUILD_KERAS_BACKEND=` in an env file) means the default.
    configured = str(settings.GRADER_BUILD_KERAS_BACKEND or "numpy").strip()
    if configured not in LIGHT_BACKENDS or configured in _unavailable_backends:
        return "tensorflow"
    if TENSORFLOW_MENTION.search(source):
        return "tensorflow"
    return configured


def _run_build_job(
    dirs: JobDirs,
    sandbox: Any,
    resources: StageResources,
    cancel: threading.Event | None,
    backend: str,
) -> tuple[dict[str, Any], Any]:
    # No data at all: `build_model` only builds. (Were the train split mounted, a module could
    # smuggle the held-out validation images into the config that custom training then reads.)
    job = sandbox_job(
        stage="build",
        dirs=dirs,
        data_dir=None,
        resources=resources,
        sandbox=sandbox,
        keras_backend=backend,
    )
    result = sandbox.run(job, cancel=cancel)
    return read_stage_result(stage="build", dirs=dirs, result=result, resources=resources), result


def _run_warm_build_job(
    warm: warm_build.WarmBuild,
    source: str,
    spec: dict[str, Any],
    cancel: threading.Event | None,
) -> tuple[dict[str, Any], Any]:
    result = warm.run(source=source, spec=spec, cancel=cancel)
    if result is None:
        raise InfrastructureError("The warm build sandbox ended without a result.")
    payload = read_stage_result(
        stage="build", dirs=warm.dirs, result=result, resources=warm.resources
    )
    return payload, result


def build_model_config(
    path: str | Path,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    sandbox_name: str | None = None,
) -> dict[str, Any]:
    """The Keras model config of a submission file; `.py` modules are built in a sandbox.

    Used by the `check_model` command for `.py` files. A throwaway job directory is used and
    removed afterwards.

    Raises:
        GraderError: The file could not be built (`error_code` is the failure reason, e.g.
            `build_error`, `timeout`, `invalid_submission`, or `infrastructure` when the
            sandbox cannot run).
    """
    from workers.pipeline.sandboxes import open_sandbox

    path = Path(path)
    try:
        if submission_format(path) not in SOURCE_FORMATS:
            return read_static_config(path)
        jobs_root = Path(settings.GRADER_JOBS_DIR)
        jobs_root.mkdir(parents=True, exist_ok=True)
        # Under the jobs root, not /tmp: sandboxes put a private tmpfs over /tmp.
        with tempfile.TemporaryDirectory(prefix="check-model-", dir=jobs_root) as root:
            Path(root).chmod(0o755)
            dirs = job_dirs(root=Path(root), key="check_model", stage="build")
            output = run_build(
                path=path,
                input_shape=input_shape,
                num_classes=num_classes,
                dirs=dirs,
                sandbox=open_sandbox(sandbox_name),
                resources=StageResources(DEFAULT_BUILD_SECONDS, DEFAULT_BUILD_MEMORY_MB),
            )
            return output.model_config
    except (StageFailed, InfrastructureError) as exc:
        error = GraderError(exc.message)
        # The instance's code: the stage's verdict, or `infrastructure`.
        error.error_code = getattr(exc, "reason", "infrastructure")
        raise error from exc
