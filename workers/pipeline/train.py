"""Train: fresh weights, the train split only, progress streamed live, checkpoints kept.

The runner trains inside the sandbox with the GPU this worker owns. Its first protocol line
describes the network Keras built; it must match the check stage's analysis before any epoch
counts (`workers.pipeline.built_model`: a difference stops the job and refuses the file). Each
finished epoch then arrives as a ``GRADER-PROGRESS`` line while the job runs (stored as an
`EpochMetric` by the caller).
Checkpoints live in the job's persistent ``work`` directory, so running the stage again after a
killed worker resumes from the last finished epoch instead of starting over.

Custom training (the assignment allows it and the submission is a `.py` module): the module is
imported in the sandbox, so everything the job reports (epochs, seconds) comes from student
code and proves nothing; `TrainOutput.custom_training` says so. Every training is mounted the
train split WITHOUT its held-out validation part (``train-part/``, cut on the host with the
secret dataset key); the trusted trainer also gets the held-out part (``held-out/``) for its
validation curves, student code never: the evaluate stage measures the trained weights on that
part. A custom training keeps no checkpoint: a re-run starts over.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.datasets import VALIDATION_FRACTION
from grader.grading.plan import GradingPlan
from workers.pipeline.built_model import run_checked_job
from workers.pipeline.errors import InfrastructureError
from workers.pipeline.jobs import JobDirs, StageResources, sandbox_job, stage_log
from workers.pipeline.trained_weights import checked_weights

MODEL_CONFIG_FILE = "model.json"
SUBMISSION_MODULE = "submission.py"
# The share of the training split the host holds out (reported with the measurements).
VALIDATION_SPLIT = VALIDATION_FRACTION
# Seeds the weights, shuffling and augmentation; not which examples are held out (the key does).
SEED = 0


@dataclass(frozen=True)
class TrainOutput:
    """What training produced: per-epoch metrics, seconds, and the weights file on the host.

    `custom_training`: the submission's code ran in the sandbox (decided here, on the host):
    `epochs`, `seconds` and `resumed_from_epoch` are what it reported, not measurements.
    """

    epochs: list[dict[str, Any]]
    seconds: float
    weights_path: Path
    log: str = ""
    resumed_from_epoch: int | None = None
    custom_training: bool = False


def run_train(
    *,
    model_config: dict[str, Any],
    training_config: dict[str, Any] | None,
    plan: GradingPlan,
    dirs: JobDirs,
    train_dir: Path,
    sandbox: Any,
    resources: StageResources,
    on_epoch: Callable[[dict[str, Any]], None],
    analysis: Mapping[str, Any] | None,
    submission_path: Path | None = None,
    gpu_device: str | None = None,
    cancel: threading.Event | None = None,
    held_out_dir: Path | None = None,
) -> TrainOutput:
    """Run the training sandbox and return its outcome.

    Args:
        model_config: The built (and checked) model config.
        training_config: The validated training config.
        plan: The assignment's plan (policy: max epochs, custom training).
        dirs: The train job's directories; ``work`` keeps checkpoints across attempts.
        train_dir: The training split WITHOUT its held-out part (the prepared dataset's
            ``train_part_dir``), mounted at ``/job/data``.
        held_out_dir: The held-out validation part (``held_out_dir``), mounted at
            ``/job/held-out`` for the trusted trainer only, never when student code runs.
        sandbox: The sandbox backend.
        resources: Wall-clock and memory limits.
        on_epoch: Called with each ``GRADER-PROGRESS`` record while training runs, once the
            built network matched `analysis`.
        analysis: The check stage's `check_model` object: the network Keras builds in the
            sandbox must match its layers and parameter counts.
        submission_path: The `.py` module, passed only when custom training is allowed.
        gpu_device: The GPU this worker owns.
        cancel: Set from another thread to kill the sandbox (the worker lost the submission).

    Raises:
        StageFailed: Timeout, out of memory, crash, or a failure the runner reported;
            `BuiltModelMismatch` (`invalid_submission`) when Keras built another network.
        StageAborted: `cancel` was set; the sandbox was killed.
        InfrastructureError: The sandbox failed, or did not report the network it built.
    """
    (dirs.input / MODEL_CONFIG_FILE).write_text(json.dumps(model_config), encoding="utf-8")
    custom = runs_student_code(plan, submission_path)
    if custom and submission_path is not None:
        shutil.copyfile(submission_path, dirs.input / SUBMISSION_MODULE)
        # Student code must never see the examples its accuracy is measured on.
        _require_training_part(train_dir)
        held_out_dir = None
    dirs.write_spec(
        {
            "stage": "train",
            "model_config": MODEL_CONFIG_FILE,
            "training_config": training_config,
            "policy": plan.training_policy(),
            "validation_split": VALIDATION_SPLIT,
            "seed": SEED,
            "submission": SUBMISSION_MODULE if custom else None,
            "held_out": held_out_dir is not None,
        }
    )
    job = train_job(
        dirs=dirs,
        train_dir=train_dir,
        held_out_dir=held_out_dir,
        resources=resources,
        gpu_device=gpu_device,
        sandbox=sandbox,
    )
    payload, result = run_checked_job(
        stage="train",
        sandbox=sandbox,
        job=job,
        dirs=dirs,
        resources=resources,
        analysis=analysis,
        on_epoch=on_epoch,
        cancel=cancel,
    )
    # Student code may have written the weights and the result itself: checked, not trusted.
    weights_path = checked_weights(
        work=dirs.work, reported=payload.get("weights"), log=stage_log(result)
    )
    epochs = [e for e in payload.get("epochs", []) if isinstance(e, dict)]
    return TrainOutput(
        epochs=epochs,
        seconds=float(payload.get("seconds") or 0.0),
        weights_path=weights_path,
        log=stage_log(result),
        resumed_from_epoch=None if custom else _positive_int(payload.get("resumed_from_epoch")),
        custom_training=custom,
    )


def train_job(
    *,
    dirs: JobDirs,
    train_dir: Path,
    held_out_dir: Path | None,
    resources: StageResources,
    gpu_device: str | None,
    sandbox: Any,
) -> Any:
    """The train stage's `SandboxJob` in folders `dirs`: what `run_train` runs, and what a
    warm train sandbox (`workers.pipeline.warm_train`) must equal to be claimed."""
    return sandbox_job(
        stage="train",
        dirs=dirs,
        data_dir=train_dir,
        resources=resources,
        gpu_device=gpu_device,
        sandbox=sandbox,
        validation_dir=held_out_dir,
    )


def runs_student_code(plan: GradingPlan, submission_path: Path | None) -> bool:
    """Whether the train sandbox imports the submission: custom training allowed and a `.py`.

    Then its epochs are claims of student code (whether or not the module defines `train`).
    """
    return submission_path is not None and plan.allow_custom_training


def _require_training_part(train_dir: Path) -> None:
    """Refuse to mount anything but a ``train-part/`` split where student code trains.

    Raises:
        InfrastructureError: `train_dir` is another split (the whole training split holds the
            held-out examples), or unreadable.
    """
    from grader.datasets import read_split_meta
    from grader.datasets.prepared import TRAIN_PART
    from grader.errors import DatasetUnavailable

    try:
        split = read_split_meta(train_dir).split
    except DatasetUnavailable as exc:
        raise InfrastructureError(exc.message) from exc
    if split != TRAIN_PART:
        raise InfrastructureError(
            f"Custom training was given the `{split}` split ({train_dir}). Expected the "
            f"`{TRAIN_PART}` split, which holds none of the held-out validation examples.",
            retry=False,
        )


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
