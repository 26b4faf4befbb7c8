"""Stage ``train``: validate the training config, train fresh weights, checkpoint, resume.

Spec: ``{"stage": "train", "model_config": "model.json", "training_config": {...}|null,
"policy": {...}, "validation_split": 0.1, "seed": 0, "submission": "submission.py"|null,
"held_out": true|false}``. With ``held_out`` the trainer validates on the held-out part mounted
at ``/job/held-out`` (prepared on the host with the secret dataset key) and trains on all of
``/job/data``; without, it holds ``validation_split`` of ``/job/data`` out with ``seed``.
Result: ``{"ok": true, "epochs": [...], "seconds", "weights": "weights.npz",
"resumed_from_epoch", "custom_training", "training_config"}``; the weights are in ``/job/work``.

The submission's code is imported only when the policy allows custom training (and used to
train when the module defines ``train(model, data, config)``); otherwise this stage never runs
student code.

Before any epoch, and before the submission is imported, the model Keras built is described on
the protocol stream (``{"built_model": ...}``, `ProgressChannel.report_built_model`): the host
compares it with its static analysis and stops the job on a difference. Once the student's
module is imported, anything this process prints is theirs; the first report is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grader.training.config import validate_training_config
from grader.training.safe_model import parse_model_json
from grader.training.trainer import (
    WEIGHTS_FILENAME,
    build_training_model,
    train,
    train_custom,
)
from workers.runner.protocol import JobPaths, ProgressChannel, RunnerError
from workers.runner.submission import call_student, import_submission


def run(job: JobPaths, spec: dict[str, Any], progress: ProgressChannel) -> dict[str, Any]:
    """Run the train stage; raises `GraderError` subclasses for the submission's failures."""
    policy = spec.get("policy") or {}
    if not isinstance(policy, dict):
        raise RunnerError(f"spec policy is a {type(policy).__name__}; expected an object.")
    config = validate_training_config(spec.get("training_config"), policy)
    model_config = parse_model_json(
        job.input_file(str(spec["model_config"])).read_text(encoding="utf-8")
    )
    seed = int(spec.get("seed", 0))
    common = {
        "model_config": model_config,
        "config": config,
        "train_dir": job.data,
        "work_dir": job.work,
        "seed": seed,
        "progress": progress,
    }

    validation_split = float(spec.get("validation_split", 0.1))
    submission = spec.get("submission")
    if not (policy.get("allow_custom_training") and submission):
        outcome = train(
            validation_split=validation_split,
            validation_dir=_held_out(job, spec),
            on_built=progress.report_built_model,
            **common,
        )
        custom = False
    else:
        # Built and described first: from the import on, code in this process is the student's.
        model = build_training_model(model_config, train_dir=job.data, seed=seed)
        progress.report_built_model(model)
        path = job.input_file(str(submission))
        candidate = getattr(import_submission(path), "train", None)
        custom = callable(candidate)
        if custom:

            def train_fn(given: Any, data: dict[str, Any], declared: dict[str, Any]) -> Any:
                what = "Calling `train(model, data, config)`"
                return call_student(
                    "custom_training_failed", what, path, candidate, given, data, declared
                )

            outcome = train_custom(train_fn=train_fn, model=model, **common)
        else:
            # The module only builds: the trusted loop trains (the report is already sent).
            outcome = train(
                validation_split=validation_split,
                validation_dir=_held_out(job, spec),
                **common,
            )
    return {
        "ok": True,
        "epochs": outcome.epochs,
        "seconds": outcome.seconds,
        "weights": WEIGHTS_FILENAME,
        "resumed_from_epoch": outcome.resumed_from_epoch,
        "custom_training": custom,
        "training_config": config.to_dict(),
    }


def _held_out(job: JobPaths, spec: dict[str, Any]) -> Path | None:
    """The mounted held-out validation part, when the spec says the host prepared one."""
    if not spec.get("held_out"):
        return None
    if not job.held_out.is_dir():
        raise RunnerError(f"spec asks for the held-out part but {job.held_out} is not mounted.")
    return job.held_out
