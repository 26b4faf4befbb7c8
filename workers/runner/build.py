"""Stage ``build``: import the submission, call ``build_model``, return its JSON config.

Spec: ``{"stage": "build", "submission": "submission.py", "input_shape": [h, w, c],
"num_classes": n}``. Result: ``{"ok": true, "model_config": {...}, "training_config":
{...}|null, "custom_training": bool}``. The config is checked (no Lambda, no custom classes,
at most 2 MB) and rebuilt once in Keras' safe mode, so the train stage is known to be able to
rebuild it. Nothing is pickled: only JSON leaves the sandbox.

On a light Keras backend (``KERAS_BACKEND=jax``, see `workers.runner.keras_import`), a module
that imports TensorFlow (or `tf.keras`) gets the result ``{"ok": false, "error": {"kind":
"needs_tensorflow", ...}}`` whatever it did after: the host builds it again on TensorFlow.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from grader.errors import GraderError
from grader.training.safe_model import build_model, check_io_shapes, parse_model_json
from workers.runner.keras_import import NEEDS_TENSORFLOW, tensorflow_requested
from workers.runner.protocol import JobPaths, ProgressChannel, SubmissionFailure, failure
from workers.runner.submission import call_student, import_submission

MAX_TRAINING_CONFIG_BYTES = 64 * 1024


def run(job: JobPaths, spec: dict[str, Any], progress: ProgressChannel) -> dict[str, Any]:
    """Run the build stage; raises `GraderError` subclasses for the submission's failures."""
    try:
        result = _build(job, spec)
    except GraderError:
        if not tensorflow_requested():
            raise
        result = {}
    asked = tensorflow_requested()
    if asked:
        # Whatever the module made of the refused import, its verdict is TensorFlow's.
        return failure(NEEDS_TENSORFLOW, f"The module imports `{asked[0]}`.")
    return result


def _build(job: JobPaths, spec: dict[str, Any]) -> dict[str, Any]:
    path = job.input_file(str(spec["submission"]))
    input_shape = tuple(int(v) for v in spec["input_shape"])
    num_classes = int(spec["num_classes"])
    module = import_submission(path)

    build = getattr(module, "build_model", None)
    if not callable(build):
        raise SubmissionFailure(
            "invalid_submission",
            f"`{path.name}` defines no `build_model(input_shape, num_classes)` function.",
        )
    model = call_student(
        "build_failed",
        f"Calling `build_model({input_shape}, {num_classes})`",
        path,
        build,
        input_shape,
        num_classes,
    )
    # A module that never imported Keras cannot have built a keras.Model: refuse without
    # paying for the TensorFlow import.
    keras = sys.modules.get("keras")
    if keras is None or not isinstance(model, keras.Model):
        raise SubmissionFailure(
            "invalid_model",
            f"`build_model` returned a `{type(model).__name__}`. Expected a keras.Model.",
        )
    text = call_student(
        "invalid_model", "Serializing the model (`model.to_json()`)", path, model.to_json
    )
    config = parse_model_json(text)
    check_io_shapes(build_model(config), input_shape, num_classes)

    training_config = None
    declare = getattr(module, "training_config", None)
    if callable(declare):
        training_config = call_student(
            "invalid_training_config", "Calling `training_config()`", path, declare
        )
        if not isinstance(training_config, dict):
            raise SubmissionFailure(
                "invalid_training_config",
                f"`training_config()` returned a `{type(training_config).__name__}`. Expected a "
                "dict.",
            )
        try:
            size = len(json.dumps(training_config, allow_nan=False).encode("utf-8"))
        except (TypeError, ValueError) as exc:
            raise SubmissionFailure(
                "invalid_training_config",
                f"`training_config()` returned a dict that is not JSON-serialisable: {exc}.",
            ) from None
        if size > MAX_TRAINING_CONFIG_BYTES:
            raise SubmissionFailure(
                "invalid_training_config",
                f"`training_config()` is {size:,} bytes as JSON. Expected at most "
                f"{MAX_TRAINING_CONFIG_BYTES:,}.",
            )
    return {
        "ok": True,
        "model_config": config,
        "training_config": training_config,
        "custom_training": callable(getattr(module, "train", None)),
    }
