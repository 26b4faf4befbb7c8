"""The runner's side of the sandbox contract: spec in, result out, progress lines.

``spec.json`` is read with a size cap and must be a JSON object for the expected stage.
``result.json`` is written atomically (temporary file, then rename) and capped at 4 MB: an
oversized result is replaced by an error result rather than truncated. Progress lines go to a
private duplicate of the original stdout; everything else printed in the process (TensorFlow's
logs, a student's ``print``) is sent to stderr, so it cannot interleave with the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from grader.errors import GraderError

#: Set by the host for a warm build sandbox (`workers.pipeline.warm_build`): the runner imports
#: its stage, then waits up to this many seconds for ``in/spec.json``.
WAIT_ENV = "GRADER_RUNNER_WAIT_SECONDS"
STAGES = ("build", "train", "unpack", "evaluate")
REQUIRED_SPEC_KEYS = {
    "build": ("submission", "input_shape", "num_classes"),
    "train": ("model_config",),
    "unpack": ("keras_file",),
    "evaluate": ("model_config", "weights"),
}
MAX_SPEC_BYTES = 1024 * 1024
MAX_RESULT_BYTES = 4 * 1024 * 1024
MAX_MESSAGE_CHARS = 4000
PROGRESS_PREFIX = "GRADER-PROGRESS "
#: The key of the one protocol record that is not an epoch: what Keras built, reported first.
BUILT_MODEL_KEY = "built_model"


class SubmissionFailure(GraderError):
    """A failure the submission caused; reported in ``result.json``, exit code 0."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


class RunnerError(Exception):
    """The job itself is malformed (missing spec, wrong stage): the runner's fault, exit 2."""


@dataclass(frozen=True)
class JobPaths:
    """The fixed directories of a sandbox job."""

    root: Path

    @property
    def inputs(self) -> Path:
        """Read-only inputs: ``spec.json``, the submission, the model config, weights."""
        return self.root / "in"

    @property
    def data(self) -> Path:
        """The dataset split mounted for this stage (training examples for train, test for
        evaluate, none for build)."""
        return self.root / "data"

    @property
    def held_out(self) -> Path:
        """The held-out validation part (trusted train and evaluate only; no student code)."""
        return self.root / "held-out"

    @property
    def work(self) -> Path:
        """Read-write, kept between attempts: checkpoints and final weights."""
        return self.root / "work"

    @property
    def out(self) -> Path:
        """Read-write: ``result.json``."""
        return self.root / "out"

    def input_file(self, name: str) -> Path:
        """A file named in the spec, which must stay inside ``/job/in``."""
        path = (self.inputs / name).resolve()
        if not path.is_relative_to(self.inputs.resolve()):
            raise RunnerError(f"spec names `{name}`, outside {self.inputs}.")
        return path


def read_spec(job: JobPaths, stage: str) -> dict[str, Any]:
    """Read ``in/spec.json`` and check it is an object for `stage`."""
    path = job.inputs / "spec.json"
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise RunnerError(f"{path} is {size:,} bytes; expected at most {MAX_SPEC_BYTES:,}.")
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunnerError(f"cannot read {path}: {exc}") from exc
    if not isinstance(spec, dict) or spec.get("stage") != stage:
        found = spec.get("stage") if isinstance(spec, dict) else type(spec).__name__
        raise RunnerError(f"{path} is for stage {found!r}; this runner was started for {stage!r}.")
    missing = [key for key in REQUIRED_SPEC_KEYS[stage] if key not in spec]
    if missing:
        raise RunnerError(f"{path} lacks {', '.join(missing)} for stage {stage!r}.")
    return spec


def write_result(job: JobPaths, result: dict[str, Any]) -> Path:
    """Write ``out/result.json`` atomically; an oversized result becomes an error result."""
    text = json.dumps(result, allow_nan=False, separators=(",", ":"))
    if len(text.encode("utf-8")) > MAX_RESULT_BYTES:
        text = json.dumps(
            failure(
                "result_too_large",
                f"The result is {len(text.encode('utf-8')):,} bytes. Expected at most "
                f"{MAX_RESULT_BYTES:,} bytes.",
            )
        )
    job.out.mkdir(parents=True, exist_ok=True)
    target = job.out / "result.json"
    temporary = job.out / ".result.json.tmp"
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    return target


def failure(error_code: str, message: str) -> dict[str, Any]:
    """A ``{"ok": false, "error": {...}}`` result with a bounded message, host paths redacted."""
    from workers.runner.redact import redact_paths

    message = redact_paths(message)
    if len(message) > MAX_MESSAGE_CHARS:
        marker = "\n... (truncated)"
        message = message[: MAX_MESSAGE_CHARS - len(marker)] + marker
    return {"ok": False, "error": {"kind": error_code, "message": message}}


class ProgressChannel:
    """Writes ``GRADER-PROGRESS {json}`` lines to the protocol stream.

    One per epoch, and before them (train and evaluate) one ``{"built_model": {...}}`` record:
    what Keras built, written by the runner's own code before any student code is imported.
    The host trusts only the first such record, and only before the first epoch.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, record: dict[str, Any]) -> None:
        self._stream.write(PROGRESS_PREFIX + json.dumps(record, allow_nan=False) + "\n")
        self._stream.flush()

    def report_built_model(self, model: Any) -> None:
        """Describe the built `keras.Model` for the host (`grader.training.built_model`)."""
        from grader.training.built_model import describe_built_model

        self({BUILT_MODEL_KEY: describe_built_model(model).to_dict()})


def claim_stdout() -> ProgressChannel:
    """Keep the real stdout for protocol lines; point file descriptor 1 at stderr.

    Done at the file-descriptor level so that C++ logging and anything a student's code prints
    lands on stderr instead of between progress lines.
    """
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return ProgressChannel(os.fdopen(protocol_fd, "w", buffering=1, encoding="utf-8"))


def student_traceback(
    exc: BaseException, tb: TracebackType | None, submission: Path, *, limit: int = 8
) -> str:
    """The exception and only the frames from the student's file, paths reduced to the name.

    The runner's and libraries' frames (and the sandbox's paths) are none of the student's
    business and may leak the environment; the frames of their own file are what they need.
    """
    frames = [
        frame
        for frame in traceback.extract_tb(tb)
        if Path(frame.filename).resolve() == submission.resolve()
    ][-limit:]
    lines = []
    for frame in frames:
        lines.append(f'  File "{submission.name}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    detail = detail.replace(str(submission.parent) + os.sep, "")
    if lines:
        return "Traceback (most recent call last):\n" + "\n".join(lines) + "\n" + detail
    return detail
