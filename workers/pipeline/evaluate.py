"""Evaluate: accuracy on the hidden TEST split, never with student code.

The only stage that sees the test split. It runs no student code: in train mode the runner
rebuilds the architecture from its JSON config and loads the trained weights (HDF5 data); in
evaluate-only mode it opens the uploaded `.keras` with Keras' safe mode after the pure-Python
loader vetted its config. A `.py` submission is never given to this stage.

In train mode it also measures the trained weights on the validation part held out of the TRAIN
split (the host-prepared ``held-out/`` split, mounted read-only next to the test split): the
grader's own validation accuracy, which decides `min_val_accuracy` when the submission's code ran
the training.

The runner first describes the network Keras built (or loaded from the archive); it must match
the check stage's analysis (`workers.pipeline.built_model`), or the file is refused.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.pipeline.built_model import run_checked_job
from workers.pipeline.errors import StageFailed
from workers.pipeline.jobs import JobDirs, StageResources, sandbox_job, stage_log
from workers.pipeline.train import VALIDATION_SPLIT
from workers.pipeline.trained_weights import copy_weights

MODEL_CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.weights.h5"
KERAS_FILE = "submission.keras"


@dataclass(frozen=True)
class EvaluationOutput:
    """Metrics on the test split, and on the held-out validation part when measured.

    `validation`: ``{"accuracy", "loss", "num_examples", "validation_split"}`` of the trained
    weights on the held-out validation part of the train split, or None (evaluate-only mode).
    """

    accuracy: float
    loss: float | None
    per_class_accuracy: list[float] | None
    confusion_matrix: list[list[int]] | None
    num_examples: int | None
    log: str = ""
    validation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `grade --format json` form of the evaluation."""
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion_matrix": self.confusion_matrix,
            "num_examples": self.num_examples,
            "validation": self.validation,
        }


def run_evaluate(
    *,
    dirs: JobDirs,
    test_dir: Path,
    sandbox: Any,
    resources: StageResources,
    analysis: Mapping[str, Any] | None,
    model_config: dict[str, Any] | None = None,
    weights_path: Path | None = None,
    keras_path: Path | None = None,
    gpu_device: str | None = None,
    held_out_dir: Path | None = None,
    cancel: threading.Event | None = None,
) -> EvaluationOutput:
    """Evaluate trained weights (train mode) or an uploaded `.keras` (evaluate-only mode).

    `cancel`, set from another thread, kills the sandbox (the worker lost the submission).

    `analysis`: the check stage's `check_model` object; the network the sandbox builds (or
    loads) must match it.

    `held_out_dir` (train mode): the held-out validation part of the TRAIN split (the prepared
    dataset's ``held_out_dir``), to also measure the weights on it.

    Raises:
        StageFailed: The model could not be evaluated (refused archive, crash, timeout, ...);
            `BuiltModelMismatch` (`invalid_submission`) when Keras built another network.
        StageAborted: `cancel` was set; the sandbox was killed.
        InfrastructureError: The sandbox failed, or did not report the network it built.
    """
    if keras_path is not None:
        if Path(keras_path).suffix.lower() != ".keras":
            raise StageFailed(
                "invalid_submission",
                f"Evaluate-only assignments take a `.keras` archive. Received "
                f"`{Path(keras_path).suffix or Path(keras_path).name}`.",
            )
        shutil.copyfile(keras_path, dirs.input / KERAS_FILE)
        spec: dict[str, Any] = {"stage": "evaluate", "keras_file": KERAS_FILE}
    else:
        if model_config is None or weights_path is None:
            raise ValueError("Evaluation needs a model config and trained weights, or a .keras.")
        (dirs.input / MODEL_CONFIG_FILE).write_text(json.dumps(model_config), encoding="utf-8")
        copy_weights(source=weights_path, destination=dirs.input / WEIGHTS_FILE)
        spec = {"stage": "evaluate", "model_config": MODEL_CONFIG_FILE, "weights": WEIGHTS_FILE}
        if held_out_dir is not None:
            spec["validation"] = {"validation_split": VALIDATION_SPLIT}
    dirs.write_spec(spec)
    job = sandbox_job(
        stage="evaluate",
        dirs=dirs,
        data_dir=test_dir,
        resources=resources,
        gpu_device=gpu_device,
        sandbox=sandbox,
        validation_dir=held_out_dir if keras_path is None else None,
    )
    payload, result = run_checked_job(
        stage="evaluate",
        sandbox=sandbox,
        job=job,
        dirs=dirs,
        resources=resources,
        analysis=analysis,
        cancel=cancel,
    )
    accuracy = payload.get("accuracy")
    if not isinstance(accuracy, int | float):
        raise StageFailed("crashed", "The evaluation reported no accuracy. Expected a number.")
    loss = payload.get("loss")
    return EvaluationOutput(
        accuracy=float(accuracy),
        loss=float(loss) if isinstance(loss, int | float) else None,
        per_class_accuracy=payload.get("per_class_accuracy"),
        confusion_matrix=payload.get("confusion_matrix"),
        num_examples=payload.get("num_examples"),
        log=stage_log(result),
        validation=_validation(payload.get("validation")),
    )


def _validation(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not isinstance(value.get("accuracy"), int | float):
        return None
    loss = value.get("loss")
    examples = value.get("num_examples")
    return {
        "accuracy": float(value["accuracy"]),
        "loss": float(loss) if isinstance(loss, int | float) else None,
        "num_examples": examples if isinstance(examples, int) else None,
        "validation_split": VALIDATION_SPLIT,
    }
