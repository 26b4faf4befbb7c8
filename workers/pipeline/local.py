"""Run every stage synchronously, in this process, for one file: the `grade` command's engine.

The same stage functions as the Celery workers (`build`, `check`, `train`, `evaluate`,
`finalize`), the same sandboxes and the same limits; only the bookkeeping differs: nothing is
written to the database, and job folders are temporary (under `GRADER_JOBS_DIR`, removed after).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from grader.grading.plan import GradingPlan
from workers.pipeline.errors import InfrastructureError, StageFailed
from workers.pipeline.jobs import StageResources, job_dirs

PASSED = "passed"
FAILED = "failed"
ERROR = "error"

#: Exit status of `grade` for each outcome.
EXIT_CODES = {PASSED: 0, FAILED: 1, ERROR: 2}

EventCallback = Callable[[str, dict[str, Any]], None]


@dataclass
class GradeReport:
    """The outcome of grading one file, in the `grade --format json` shape (`to_dict`)."""

    file: str
    status: str = ERROR
    reason: str = ""
    message: str = ""
    checks: dict[str, Any] | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    training_seconds: float | None = None
    evaluation: dict[str, Any] | None = None
    score: float | None = None
    rules: list[dict[str, Any]] = field(default_factory=list)
    #: What the grader read from a `.py`/`.ipynb`: notebook cells used, notes on the code.
    source: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed, 2 error."""
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        """`{"status", "reason", "message", "checks", "training", "evaluation", "score",
        "source"}` (`source`: `{"notebook", "notes"}` for a `.py`/`.ipynb`, else null)."""
        training = None
        if self.training_seconds is not None or self.epochs:
            training = {"epochs": self.epochs, "seconds": self.training_seconds}
        checks = self.checks
        if checks is not None and self.rules:
            # The final rule verdicts (training-decided ones included) replace the static ones.
            checks = {**checks, "rules": self.rules, "passed": _overall(self.rules)}
        return {
            "file": self.file,
            "status": self.status,
            "reason": self.reason or None,
            "message": self.message,
            "checks": checks,
            "training": training,
            "evaluation": self.evaluation,
            "score": self.score,
            "source": self.source,
        }


def _overall(rules: list[dict[str, Any]]) -> bool | None:
    from grader.grading.scoring import stored_rules_passed

    return stored_rules_passed(rules)


def _planned_epochs(training_config: dict[str, Any] | None) -> int | None:
    epochs = (training_config or {}).get("epochs")
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def _resources(plan: GradingPlan, stage: str) -> StageResources:
    limits = plan.stage_limits(
        stage,
        build_seconds=int(settings.GRADER_BUILD_SECONDS),
        evaluate_seconds=int(settings.GRADER_EVALUATE_SECONDS),
        grace_seconds=int(settings.GRADER_SANDBOX_GRACE_SECONDS),
    )
    return StageResources(wall_seconds=limits.sandbox_seconds, memory_mb=plan.memory_limit_mb)


def grade_file(
    path: str | Path,
    plan: GradingPlan,
    *,
    sandbox_name: str | None = None,
    on_event: EventCallback | None = None,
    is_late: bool = False,
) -> GradeReport:
    """Grade one submission file through every stage, synchronously.

    Args:
        path: A `.py` module, a `.json` model config or a `.keras` archive.
        plan: The assignment (database or preset) to grade against.
        sandbox_name: `docker` or `bwrap` (default: `GRADER_SANDBOX`).
        on_event: Called as `on_event(event, data)` with events `stage` (`{"stage"}`), `epoch`
            (a progress record) and `done` (the report dict): live progress for the CLI.
        is_late: Apply the assignment's late policy to the score.

    Returns:
        The report; never raises for a submission's failure or an infrastructure error (both
        become the report's status).
    """
    path = Path(path)
    report = GradeReport(file=str(path))
    emit = on_event or (lambda event, data: None)
    jobs_root = Path(settings.GRADER_JOBS_DIR)
    jobs_root.mkdir(parents=True, exist_ok=True)
    try:
        # Under the jobs root, not /tmp: sandboxes put a private tmpfs over /tmp.
        with tempfile.TemporaryDirectory(prefix="grade-", dir=jobs_root) as root:
            Path(root).chmod(0o755)
            _run_stages(path, plan, Path(root), report, emit, sandbox_name, is_late)
    except StageFailed as exc:
        report.status, report.reason, report.message = FAILED, exc.reason, exc.message
        if exc.details and report.checks is not None:
            # What the site keeps for instructors only; whoever runs `grade` is one.
            report.checks = {**report.checks, **exc.details}
    except InfrastructureError as exc:
        report.status, report.reason, report.message = ERROR, "infrastructure", exc.message
    emit("done", report.to_dict())
    return report


def _run_stages(
    path: Path,
    plan: GradingPlan,
    root: Path,
    report: GradeReport,
    emit: EventCallback,
    sandbox_name: str | None,
    is_late: bool,
) -> None:
    from grader.datasets import get_source, prepare_dataset
    from grader.errors import DatasetUnavailable
    from grader.grading.static_check import run_check
    from grader.grading.verdict import compute_verdict, final_failure
    from workers.pipeline.build import run_build, submission_format
    from workers.pipeline.evaluate import run_evaluate
    from workers.pipeline.sandboxes import open_sandbox, worker_gpu_device
    from workers.pipeline.source_build import SOURCE_FORMATS, prepare_source
    from workers.pipeline.train import run_train

    file_format = submission_format(path)
    if not plan.trains and file_format != "keras":
        raise StageFailed(
            "invalid_submission",
            f"Assignment `{plan.slug}` evaluates a trained model. Expected a `.keras` archive; "
            f"received `{path.name}`.",
        )
    prepared: list[Any] = []

    def dataset() -> Any:
        # Prepared on first need: a `.json` that fails its static rules needs no data at all.
        if not prepared:
            try:
                prepared.append(
                    prepare_dataset(
                        plan.dataset,
                        Path(settings.GRADER_DATA_DIR),
                        key=settings.GRADER_DATASET_KEY,
                    )
                )
            except DatasetUnavailable as exc:
                raise InfrastructureError(exc.message, retry=False) from exc
        return prepared[0]

    sandbox = open_sandbox(sandbox_name)
    key = "local"

    emit("stage", {"stage": "build"})
    if file_format in SOURCE_FORMATS:
        # Reported whether or not the build succeeds: which cells were used, notes on the code.
        report.source = prepare_source(path, file_format).report()
        # The registry's shape: a model is built and checked even where the data is missing.
        try:
            source = get_source(plan.dataset)
        except DatasetUnavailable as exc:
            raise InfrastructureError(exc.message, retry=False) from exc
        built = run_build(
            path=path,
            input_shape=source.input_shape,
            num_classes=source.num_classes,
            dirs=job_dirs(root=root, key=key, stage="build"),
            sandbox=sandbox,
            resources=_resources(plan, "building"),
        )
    else:
        built = run_build(
            path=path,
            input_shape=(),
            num_classes=0,
            dirs=None,
            sandbox=None,
            resources=_resources(plan, "building"),
        )

    emit("stage", {"stage": "check"})
    checked = run_check(
        model_config=built.model_config,
        declared_training=built.training_config,
        plan=plan,
        is_late=is_late,
    )
    report.checks = checked.checks
    report.rules = checked.rules
    # What the site records at this point: a later stage's failure leaves no score.
    report.score = checked.recorded_score
    if checked.stop:
        raise StageFailed("rules", checked.message)

    gpu = worker_gpu_device()
    custom = False
    if plan.trains:
        # The epochs this run trains: the validated config's (declared, for custom training).
        emit("stage", {"stage": "train", "epochs": _planned_epochs(checked.training_config)})

        def on_epoch(record: dict[str, Any]) -> None:
            report.epochs.append(record)
            emit("epoch", record)

        trained = run_train(
            model_config=built.model_config,
            training_config=checked.training_config,
            plan=plan,
            dirs=job_dirs(root=root, key=key, stage="train"),
            train_dir=dataset().train_part_dir,
            held_out_dir=dataset().held_out_dir,
            sandbox=sandbox,
            resources=_resources(plan, "training"),
            on_epoch=on_epoch,
            analysis=checked.checks,
            submission_path=path if file_format == "py" else None,
            gpu_device=gpu,
        )
        # The result's list is authoritative (a streamed line could be missed).
        report.epochs = sorted(trained.epochs, key=lambda e: e.get("epoch", 0))
        report.training_seconds = trained.seconds
        custom = trained.custom_training
        emit("stage", {"stage": "evaluate"})
        evaluated = run_evaluate(
            dirs=job_dirs(root=root, key=key, stage="evaluate"),
            test_dir=dataset().test_dir,
            sandbox=sandbox,
            resources=_resources(plan, "evaluating"),
            analysis=checked.checks,
            model_config=built.model_config,
            weights_path=trained.weights_path,
            gpu_device=gpu,
            held_out_dir=dataset().held_out_dir,
        )
    else:
        emit("stage", {"stage": "evaluate"})
        evaluated = run_evaluate(
            dirs=job_dirs(root=root, key=key, stage="evaluate"),
            test_dir=dataset().test_dir,
            sandbox=sandbox,
            resources=_resources(plan, "evaluating"),
            analysis=checked.checks,
            keras_path=path,
            gpu_device=gpu,
        )
    report.evaluation = evaluated.to_dict()
    measured = (evaluated.validation or {}).get("accuracy")

    verdict = compute_verdict(
        plan=plan,
        model_config=built.model_config,
        epochs=report.epochs,
        test_accuracy=evaluated.accuracy,
        is_late=is_late,
        training_config=checked.training_config,
        custom_training=custom,
        measured_val_accuracy=measured,
    )
    report.rules = verdict.rules
    report.score = verdict.score
    reason, message = final_failure(verdict.rules)
    if reason:
        report.status, report.reason, report.message = FAILED, reason, message
    else:
        report.status = PASSED
