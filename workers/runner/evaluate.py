"""Stage ``evaluate``: metrics on the test split (the only stage that sees it).

Spec: ``{"stage": "evaluate", "model_config": "model.json", "weights": "weights.npz",
"validation": {"validation_split": 0.1}|null}`` (weights looked up in ``/job/in``, then
``/job/work``). Evaluate-only assignments send the arrays their ``unpack`` job wrote from the
student's ``.keras`` (`workers.runner.unpack`): this stage never parses HDF5. Result: ``{"ok":
true, "accuracy", "loss", "per_class_accuracy", "confusion_matrix", "num_examples",
"validation"}``.

With ``validation``, the held-out validation part of the training split (prepared on the host)
is mounted at ``/job/held-out`` and the trained weights are also measured on it (``validation``
in the result: ``{"accuracy", "loss", "num_examples", "validation_split"}``, null when the spec
asks for none). No student code runs here, so these numbers are the grader's own.

Before evaluating, the model Keras built (or loaded from the archive) is described on the
protocol stream (``{"built_model": ...}``), for the host to compare with its static analysis.
"""

from __future__ import annotations

from typing import Any

from grader.training.evaluation import (
    evaluate_held_out,
    evaluate_model,
    load_trained_model,
)
from grader.training.safe_model import parse_model_json
from workers.runner.protocol import JobPaths, ProgressChannel, RunnerError


def run(job: JobPaths, spec: dict[str, Any], progress: ProgressChannel) -> dict[str, Any]:
    """Run the evaluate stage; raises `GraderError` subclasses for the submission's failures."""
    model_config = parse_model_json(
        job.input_file(str(spec["model_config"])).read_text(encoding="utf-8")
    )
    name = str(spec.get("weights", "weights.npz"))
    weights = job.input_file(name)
    if not weights.is_file():
        weights = (job.work / name).resolve()
        if not weights.is_relative_to(job.work.resolve()) or not weights.is_file():
            raise RunnerError(f"weights `{name}` are in neither {job.inputs} nor {job.work}.")
    model = load_trained_model(model_config=model_config, weights_path=weights)
    progress.report_built_model(model)
    evaluation = evaluate_model(model, job.data)
    return {"ok": True, **evaluation.to_dict(), "validation": _validation(job, spec, model)}


def _validation(job: JobPaths, spec: dict[str, Any], model: Any) -> dict[str, Any] | None:
    wanted = spec.get("validation")
    if not wanted:
        return None
    if not isinstance(wanted, dict):
        raise RunnerError(f"spec validation is a {type(wanted).__name__}; expected an object.")
    try:
        validation_split = float(wanted["validation_split"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RunnerError(f"spec validation {wanted!r} lacks the held-out fraction.") from exc
    if not job.held_out.is_dir():
        raise RunnerError(f"spec asks for validation but {job.held_out} is not mounted.")
    held_out = evaluate_held_out(model, job.held_out)
    if held_out is None:
        return None
    return {
        "accuracy": held_out.accuracy,
        "loss": held_out.loss,
        "num_examples": held_out.num_examples,
        "validation_split": validation_split,
    }
