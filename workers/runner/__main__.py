"""``python -m workers.runner STAGE /job``: run one stage inside the sandbox.

Exit codes: 0 when ``result.json`` was written (success, or a failure the submission caused);
1 when the runner crashed (traceback on stderr, host paths redacted); 2 for a malformed job
(usage, spec).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

# Both standard library only: nothing here imports Keras before the backend is chosen.
from grader.training.backend import select_backend
from workers.runner.keras_import import BACKEND_UNAVAILABLE, backend_for, import_keras

USAGE = "usage: python -m workers.runner {build|train|evaluate} /job"


#: Stages that import Keras: it is imported first, on the stage's backend, without what no stage
#: uses (`workers.runner.keras_import`).
KERAS_STAGES = ("build", "train", "evaluate")


def _quiet_environment(stage: str | None) -> None:
    # Before Keras is imported: the backend is fixed and TensorFlow's C++ logs stay below
    # warnings. Train and evaluate run on the worker's GRADER_KERAS_BACKEND (TensorFlow by
    # default, `grader.training.backend`); the build may run on a light one (`keras_import`).
    if stage in ("train", "evaluate"):
        select_backend()
    else:
        os.environ["KERAS_BACKEND"] = backend_for(stage or "", os.environ.get("KERAS_BACKEND"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")


def _spec_arrives(spec: Path, seconds: float) -> bool:
    """Wait up to `seconds` for the host to write the job's ``spec.json`` (written last, by a
    rename, once the job's input files are in place)."""
    deadline = time.monotonic() + seconds
    while not spec.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; see the module docstring for exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    _quiet_environment(args[0] if args else None)
    from grader.errors import GraderError
    from workers.runner.protocol import (
        STAGES,
        WAIT_ENV,
        JobPaths,
        RunnerError,
        claim_stdout,
        failure,
        read_spec,
        write_result,
    )

    if len(args) != 2 or args[0] not in STAGES:
        print(USAGE, file=sys.stderr)
        return 2
    stage, job = args[0], JobPaths(Path(args[1]))
    progress = claim_stdout()
    try:
        # A warm sandbox (`workers.pipeline.warm_build`) imports first, then waits for its job.
        warm_seconds = float(os.environ.get(WAIT_ENV) or 0)
        spec = read_spec(job, stage) if warm_seconds <= 0 else None
        if stage in KERAS_STAGES:
            backend = os.environ["KERAS_BACKEND"]
            try:
                import_keras(backend)
            except ImportError as exc:
                if backend == "tensorflow" or stage != "build":
                    raise
                # No JAX in this sandbox: the host builds again on TensorFlow.
                write_result(job, failure(BACKEND_UNAVAILABLE, f"Keras on {backend}: {exc}"))
                return 0
        # Only this stage's module: the build sandbox has no dataset code to import
        # (`grader.datasets` is hidden there), and needs none.
        run = importlib.import_module(f"workers.runner.{stage}").run
        if spec is None:
            if not _spec_arrives(job.inputs / "spec.json", warm_seconds):
                return 0  # no job came: the host starts another sandbox when one does
            spec = read_spec(job, stage)
        try:
            result = run(job, spec, progress)
        except GraderError as exc:
            result = failure(exc.error_code, exc.message)
        write_result(job, result)
    except RunnerError as exc:
        print(f"workers.runner: {exc}", file=sys.stderr)
        return 2
    except Exception:
        # Shown to the student in the log: the host's interpreter and library paths go.
        from workers.runner.redact import redact_paths

        print(redact_paths(traceback.format_exc()), file=sys.stderr, end="")
        return 1
    return 0


def leave(status: int) -> None:
    """Exit with `status` without the interpreter's teardown.

    With TensorFlow loaded, the teardown takes 1 to 2 s here, on every grading's path to its
    verdict (train, then evaluate). Nothing is lost: every file the job writes is closed by
    then (the result is renamed into place), protocol lines are line-buffered, and the
    standard streams are flushed here.
    """
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    os._exit(status)


if __name__ == "__main__":
    leave(main())
