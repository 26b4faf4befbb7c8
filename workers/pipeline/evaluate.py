"""Evaluate: accuracy on the hidden TEST split, never with student code.

The only stage that sees the test split. It runs no student code and parses no HDF5: the runner
rebuilds the architecture from its JSON config and loads the trained weights as checked `.npz`
arrays (`grader.training.weights_file`). In evaluate-only mode the uploaded `.keras` is first
opened by an `unpack` job (Keras' safe mode, after the pure-Python loader vetted its config) in
a sandbox that holds no data, which writes its weights as such arrays; a crafted archive that
took over that job could forge nothing but arrays of the architecture's shapes. A `.py`
submission is never given to this stage.

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

from grader.training.weights_file import WEIGHTS_FILENAME
from workers.pipeline.built_model import run_checked_job
from workers.pipeline.errors import StageFailed
from workers.pipeline.jobs import JobDirs, StageResources, job_dirs, sandbox_job, stage_log
from workers.pipeline.train import VALIDATION_SPLIT
from workers.pipeline.trained_weights import checked_weights, copy_weights

MODEL_CONFIG_FILE = "model.json"
WEIGHTS_FILE = WEIGHTS_FILENAME  # arrays only: no HDF5 parser where the test split is
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


def evaluate_job(
    *,
    dirs: JobDirs,
    test_dir: Path,
    held_out_dir: Path | None,
    resources: StageResources,
    gpu_device: str | None,
    sandbox: Any,
) -> Any:
    """The evaluate stage's `SandboxJob` in folders `dirs`: what `run_evaluate` runs, and what
    a warm evaluate sandbox (`workers.pipeline.warm_evaluate`) must equal to be claimed."""
    return sandbox_job(
        stage="evaluate",
        dirs=dirs,
        data_dir=test_dir,
        resources=resources,
        gpu_device=gpu_device,
        sandbox=sandbox,
        validation_dir=held_out_dir,
    )


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
        # Its HDF5 weights are parsed in a sandbox without data; this one gets only arrays.
        model_config, weights_path = _unpack_archive(
            keras_path=Path(keras_path),
            dirs=dirs,
            sandbox=sandbox,
            resources=resources,
            analysis=analysis,
            cancel=cancel,
        )
        held_out_dir = None  # evaluate-only: the student trained it; no validation part
    if model_config is None or weights_path is None:
        raise ValueError("Evaluation needs a model config and trained weights, or a .keras.")
    (dirs.input / MODEL_CONFIG_FILE).write_text(json.dumps(model_config), encoding="utf-8")
    copy_weights(source=weights_path, destination=dirs.input / WEIGHTS_FILE)
    spec: dict[str, Any] = {
        "stage": "evaluate",
        "model_config": MODEL_CONFIG_FILE,
        "weights": WEIGHTS_FILE,
    }
    if held_out_dir is not None:
        spec["validation"] = {"validation_split": VALIDATION_SPLIT}
    dirs.write_spec(spec)
    job = evaluate_job(
        dirs=dirs,
        test_dir=test_dir,
        held_out_dir=held_out_dir,
        resources=resources,
        gpu_device=gpu_device,
        sandbox=sandbox,
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


def _unpack_archive(
    *,
    keras_path: Path,
    dirs: JobDirs,
    sandbox: Any,
    resources: StageResources,
    analysis: Mapping[str, Any] | None,
    cancel: threading.Event | None,
) -> tuple[dict[str, Any], Path]:
    """The archive's config (read on the host, never by Keras) and its weights as arrays.

    The `unpack` job opens the `.keras` with Keras in a sandbox that holds no data, reports the
    network it built (checked against `analysis` like every other job) and writes the weights
    as `.npz` arrays into its work folder, checked before the evaluation copies them.

    Raises:
        StageFailed: the archive cannot be opened or its weights not written.
        InfrastructureError: the sandbox failed.
    """
    from grader.errors import GraderError
    from grader.loading import load_model_config

    try:
        model_config = load_model_config(keras_path)
    except GraderError as exc:
        raise StageFailed("invalid_submission", exc.message) from exc
    unpack = job_dirs(root=dirs.root.parent.parent, key=dirs.root.parent.name, stage="unpack")
    shutil.copyfile(keras_path, unpack.input / KERAS_FILE)
    unpack.write_spec({"stage": "unpack", "keras_file": KERAS_FILE})
    job = sandbox_job(
        stage="unpack", dirs=unpack, data_dir=None, resources=resources, sandbox=sandbox
    )
    payload, result = run_checked_job(
        stage="unpack",
        sandbox=sandbox,
        job=job,
        dirs=unpack,
        resources=resources,
        analysis=analysis,
        cancel=cancel,
    )
    weights = checked_weights(
        work=unpack.work,
        reported=payload.get("weights"),
        log=stage_log(result),
        what="Reading the archive's weights",
    )
    return model_config, weights


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
