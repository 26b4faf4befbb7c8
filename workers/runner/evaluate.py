"""Stage ``evaluate``: metrics on the test split (the only stage that sees it).

Spec: ``{"stage": "evaluate", "model_config": "model.json", "weights": "weights.weights.h5"}``
(weights looked up in ``/job/in``, then ``/job/work``), or ``{"stage": "evaluate",
"keras_file": "submission.keras"}`` for evaluate-only assignments. Result: ``{"ok": true,
"accuracy", "loss", "per_class_accuracy", "confusion_matrix", "num_examples"}``.
"""

from __future__ import annotations

from typing import Any

from grader.training.evaluation import evaluate, evaluate_keras_file
from grader.training.safe_model import parse_model_json
from workers.runner.protocol import JobPaths, ProgressChannel, RunnerError


def run(job: JobPaths, spec: dict[str, Any], progress: ProgressChannel) -> dict[str, Any]:
    """Run the evaluate stage; raises `GraderError` subclasses for the submission's failures."""
    if spec.get("keras_file"):
        evaluation = evaluate_keras_file(
            keras_file=job.input_file(str(spec["keras_file"])), test_dir=job.data
        )
    else:
        model_config = parse_model_json(
            job.input_file(str(spec["model_config"])).read_text(encoding="utf-8")
        )
        name = str(spec.get("weights", "weights.weights.h5"))
        weights = job.input_file(name)
        if not weights.is_file():
            weights = (job.work / name).resolve()
            if not weights.is_relative_to(job.work.resolve()) or not weights.is_file():
                raise RunnerError(f"weights `{name}` are in neither {job.inputs} nor {job.work}.")
        evaluation = evaluate(model_config=model_config, weights_path=weights, test_dir=job.data)
    return {"ok": True, **evaluation.to_dict()}
