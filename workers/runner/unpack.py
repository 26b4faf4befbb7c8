"""Stage ``unpack`` (evaluate-only assignments): the student's ``.keras`` weights, as arrays.

Spec: ``{"stage": "unpack", "keras_file": "submission.keras"}``. Result: ``{"ok": true,
"weights": "weights.npz"}``, the weights in ``/job/work``.

A ``.keras`` archive holds its weights as HDF5, whose parser is a large C library. This stage
opens the archive (its config vetted first, then Keras' safe mode: `load_keras_file`) in a
sandbox that holds no data at all, describes the network it built, and writes the weights as
plain arrays (`grader.training.weights_file`). The evaluate sandbox, which holds the test split,
then reads only those arrays: a crafted HDF5 file that took over this process could write
nothing but arrays the host and the evaluation check against the architecture.
"""

from __future__ import annotations

from typing import Any

from grader.training.safe_model import load_keras_file
from grader.training.weights_file import WEIGHTS_FILENAME, save_weights
from workers.runner.protocol import JobPaths, ProgressChannel


def run(job: JobPaths, spec: dict[str, Any], progress: ProgressChannel) -> dict[str, Any]:
    """Run the unpack stage; raises `GraderError` subclasses for the submission's failures."""
    model = load_keras_file(job.input_file(str(spec["keras_file"])))
    progress.report_built_model(model)
    save_weights(model, job.work / WEIGHTS_FILENAME)
    return {"ok": True, "weights": WEIGHTS_FILENAME}
