"""The weights a train job left in its work folder: checked where they lie, copied checked.

The train stage names the weights file its job reported and the evaluate stage copies it into
its own inputs. When the submission's own `train()` ran, that folder and that report are the
student's (`workers.sandbox.output_files` lists what they could plant there), so both steps go
through checked descriptors, and what is refused is the submission's verdict: `output_limit`
for sizes and counts past the limits, `crashed` for anything that is not a plain file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workers.pipeline.errors import InfrastructureError, StageFailed
from workers.pipeline.jobs import RESULT_FILENAME, RESULT_MAX_BYTES
from workers.sandbox.output_files import (
    WEIGHTS_MAX_BYTES,
    WORK_MAX_DEPTH,
    WORK_MAX_ENTRIES,
    OutputRejected,
    OutputTooLarge,
    check_output_file,
    check_output_tree,
    copy_output_file,
)
from workers.sandbox.outputs import collect_output


def _reason(exc: OutputRejected) -> str:
    return "output_limit" if isinstance(exc, OutputTooLarge) else "crashed"


def checked_weights(*, work: Path, reported: Any, log: str = "", what: str = "Training") -> Path:
    """The trained weights' path in the train job's `work` folder, once the folder and the file
    pass the checks of `workers.sandbox.output_files`.

    Args:
        work: the train job's work folder on the host.
        reported: the `weights` value of the job's result (a file name inside `work`).
        log: the job's log, kept with the verdict.
        what: the job, as the messages name it ("Training", or the unpacking of an archive).

    Raises:
        StageFailed: no such file, or a folder or file the host refuses.
    """
    name = Path(str(reported or "")).name
    try:
        check_output_tree(work, max_entries=WORK_MAX_ENTRIES, max_depth=WORK_MAX_DEPTH)
    except OutputRejected as exc:
        raise StageFailed(
            _reason(exc), f"{what} left a work folder the grader refuses: {exc}", log=log
        ) from exc
    if name:
        try:
            check_output_file(work, name, max_bytes=WEIGHTS_MAX_BYTES)
            return work / name
        except FileNotFoundError:
            pass
        except OutputRejected as exc:
            raise StageFailed(
                _reason(exc), f"{what} left a weights file the grader refuses: {exc}", log=log
            ) from exc
    raise StageFailed(
        "crashed",
        f"{what} finished without the weights file `{name or '(none)'}` in its work "
        "directory. Expected the trained weights.",
        log=log,
    )


def copy_weights(*, source: Path, destination: Path) -> None:
    """Copy trained weights into the evaluation's inputs, checked again as they are read.

    Raises:
        StageFailed: the file is no longer a plain file within `WEIGHTS_MAX_BYTES`.
        FileNotFoundError: the weights are gone (the caller's infrastructure problem).
    """
    try:
        copy_output_file(source, destination, max_bytes=WEIGHTS_MAX_BYTES)
    except OutputRejected as exc:
        raise StageFailed(_reason(exc), f"The trained weights cannot be evaluated: {exc}") from exc


def trained_weights_of(train: Path) -> Path:
    """The weights file the train job in folder `train` reported, next to its result.

    Raises:
        InfrastructureError: (not retried) the train stage's result is gone from this host.
    """
    try:
        files = collect_output(train / "out", RESULT_MAX_BYTES)
        name = Path(str(json.loads(files[RESULT_FILENAME])["weights"])).name
    except (KeyError, ValueError, TypeError) as exc:
        raise InfrastructureError(
            f"The trained weights of this grading are gone from this host ({train}). "
            "Expected the train stage's result next to them.",
            retry=False,
        ) from exc
    return train / "work" / name
