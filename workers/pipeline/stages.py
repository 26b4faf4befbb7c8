"""The Celery side of each stage: claim the submission, run the stage, record the outcome.

Each `execute_*` function is idempotent: its first step is the conditional transition of
`assignments.services.grading.claim_stage`; when that changes no row, another worker owns the
stage (or the submission moved on) and the function returns without doing anything. Outcomes:

- success: the stage's `complete_*` service stores the output and sends the next stage;
- `StageFailed`: a verdict (`failed` with its reason), never retried;
- `StageAborted`: the worker lost the submission while the stage ran (cancelled, regraded,
  re-queued by the reaper; `Heartbeat` notices within `GRADER_CANCEL_CHECK_SECONDS`): the
  sandbox was killed and the stage ends quietly, writing nothing;
- `InfrastructureError` (retryable) and database errors: the stage is handed back
  (`release_stage`) and the exception propagates so the task can retry it with backoff;
- anything else is a bug on our side: the submission ends as `error`, the exception is logged.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from assignments.models import Submission
from assignments.selectors import stage_rows
from assignments.services import grading
from grader.grading.plan import GradingPlan
from workers.pipeline import warm_evaluate, warm_train
from workers.pipeline.errors import (
    DatasetMissing,
    InfrastructureError,
    StageAborted,
    StageFailed,
)
from workers.pipeline.heartbeat import Heartbeat, heartbeat_while_running
from workers.pipeline.jobs import StageResources, job_dirs
from workers.pipeline.sandboxes import open_sandbox, worker_gpu_device
from workers.pipeline.trained_weights import trained_weights_of

logger = logging.getLogger(__name__)

Status = Submission.Status

SKIPPED = "skipped"
DONE = "done"
FAILED = "failed"
ERROR = "error"
ABORTED = "aborted"
WAITING = "waiting_data"


def jobs_root() -> Path:
    """Where job directories live on this host (`GRADER_JOBS_DIR`)."""
    return Path(settings.GRADER_JOBS_DIR)


def grading_key(submission: Submission) -> str:
    """The job directory key of this grading: a regrade (new `queued_at`) gets fresh folders."""
    generation = int(submission.queued_at.timestamp() * 1e6) if submission.queued_at else 0
    return f"{submission.pk}/g{generation}"


def remove_other_gradings(submission: Submission) -> None:
    """Delete job folders of earlier gradings of this submission (stale checkpoints)."""
    current = grading_key(submission).split("/", 1)[1]
    base = jobs_root() / str(submission.pk)
    if base.is_dir():
        for child in base.iterdir():
            if child.name != current:
                shutil.rmtree(child, ignore_errors=True)


def remove_grading(submission_id: int) -> None:
    """Delete every job folder of a submission once its grading ended."""
    shutil.rmtree(jobs_root() / str(submission_id), ignore_errors=True)


def prepare(plan: GradingPlan) -> Any:
    """The plan's dataset, prepared on this host (idempotent).

    Raises:
        InfrastructureError: (not retried) the dataset is not a registered one.
        DatasetMissing: the dataset is registered but not installed here: the submission waits
            for it (see `assignments.services.data_wait`).
    """
    from grader.datasets import get_source, prepare_dataset
    from grader.errors import DatasetUnavailable

    try:
        get_source(plan.dataset)
    except DatasetUnavailable as exc:
        raise InfrastructureError(exc.message, retry=False) from exc
    try:
        return prepare_dataset(
            plan.dataset, Path(settings.GRADER_DATA_DIR), key=settings.GRADER_DATASET_KEY
        )
    except DatasetUnavailable as exc:
        raise DatasetMissing(plan.dataset, exc.message) from exc


def dataset_shape(plan: GradingPlan) -> tuple[tuple[int, int, int], int]:
    """The plan's image shape and class count, from the registry: no images needed.

    A model is built and checked whatever the state of its dataset on this host; only the
    stages that read images wait for it.

    Raises:
        InfrastructureError: (not retried) the dataset is not a registered one.
    """
    from grader.datasets import get_source
    from grader.errors import DatasetUnavailable

    try:
        source = get_source(plan.dataset)
    except DatasetUnavailable as exc:
        raise InfrastructureError(exc.message, retry=False) from exc
    return source.input_shape, source.num_classes


def resources_for(stage: str, submission: Submission) -> StageResources:
    """The sandbox limits of `stage`: nested inside the task's Celery time limits."""
    limits = grading.stage_limits(stage=stage, assignment=submission.assignment)
    return StageResources(
        wall_seconds=limits.sandbox_seconds, memory_mb=int(submission.assignment.memory_limit_mb)
    )


def abandon(submission_id: int) -> None:
    """Clean up after a stage stopped because its worker lost the submission.

    When the submission was cancelled, its current grading's job folders go (nothing will
    resume from them). After a regrade the new grading removes the old folders itself, and a
    stage the reaper re-queued keeps them: its next attempt resumes from the checkpoints.
    """
    submission = stage_rows.find_submission(submission_id)
    if submission is not None and submission.status == Status.CANCELLED:
        shutil.rmtree(jobs_root() / grading_key(submission), ignore_errors=True)
        with contextlib.suppress(OSError):
            (jobs_root() / str(submission_id)).rmdir()  # only when empty


def stop_if_lost(beat: Heartbeat) -> None:
    """Raise `StageAborted` when the stage's claim was lost while its sandbox ran.

    The sandbox may have finished just before the loss was noticed; its results would be
    refused anyway, so the stage ends quietly instead of reporting them.
    """
    if beat.lost:
        raise StageAborted()


def _load(submission_id: int) -> Submission:
    return stage_rows.submission_for_stage(submission_id)


def _guarded(submission_id: int, worker: str, stage: str, body: Callable[[], None]) -> str:
    """Run a claimed stage's body and record a failure or error it raises."""
    try:
        body()
    except StageAborted as exc:
        # Cancelled, regraded or re-queued meanwhile: the new state is someone else's to write.
        logger.info("Submission %s: %s stopped (%s)", submission_id, stage, exc.message)
        abandon(submission_id)
        return ABORTED
    except DatasetMissing as exc:
        from assignments.services.data_wait import park_for_data

        logger.warning(
            "Submission %s: %s waits for dataset %s: %s", submission_id, stage, exc.dataset, exc
        )
        park_for_data(
            submission_id=submission_id, worker=worker, dataset=exc.dataset, detail=exc.detail
        )
        return WAITING
    except StageFailed as exc:
        logger.info("Submission %s failed at %s: %s", submission_id, stage, exc.reason)
        if grading.mark_failed(
            submission_id=submission_id,
            worker=worker,
            reason=exc.reason,
            message=exc.message,
            stage=stage,
            log=exc.log,
            details=exc.details,
        ):
            remove_grading(submission_id)
        return FAILED
    except InfrastructureError as exc:
        if exc.retry:
            grading.release_stage(submission_id=submission_id, worker=worker)
            raise
        grading.mark_error(
            submission_id=submission_id,
            worker=worker,
            message=exc.message,
            stage=stage,
            log=exc.log,
        )
        return ERROR
    except DatabaseError:
        # Maybe the database is down: try to hand the stage back, then let the task retry.
        try:
            grading.release_stage(submission_id=submission_id, worker=worker)
        except DatabaseError:
            logger.exception("Could not release submission %s; the reaper will", submission_id)
        raise
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # The host could not write a job file (spec, inputs) because the disk of the jobs
            # folder is full: not the submission's fault. Hand the stage back; the task retries.
            grading.release_stage(submission_id=submission_id, worker=worker)
            raise InfrastructureError(
                f"The {stage} stage could not write its job files: {exc.strerror}. "
                "Expected free space in the jobs folder (GRADER_JOBS_DIR)."
            ) from exc
        logger.exception("Submission %s: unexpected error in %s", submission_id, stage)
        grading.mark_error(
            submission_id=submission_id,
            worker=worker,
            message=f"An internal error stopped the {stage} stage. It was logged; an "
            "instructor can regrade the submission.",
            stage=stage,
        )
        return ERROR
    return DONE


def _claim(submission_id: int, worker: str, from_status: str, to_status: str) -> bool:
    claimed = grading.claim_stage(
        submission_id=submission_id, from_status=from_status, to_status=to_status, worker=worker
    )
    if not claimed:
        message = "Submission %s: %s -> %s not claimed by %s (owned elsewhere or moved on)"
        logger.info(message, submission_id, from_status, to_status, worker)
    return claimed


def execute_build(
    submission_id: int, *, worker: str, sandbox: Any = None, claimed: bool = False
) -> str:
    """Claim `queued -> building` (unless the dispatcher `claimed` it), build, send the check."""
    if not claimed and not _claim(submission_id, worker, Status.QUEUED, Status.BUILDING):
        return SKIPPED
    from workers.pipeline.build import run_build, submission_format
    from workers.pipeline.source_build import SOURCE_FORMATS

    def body() -> None:
        submission = _load(submission_id)
        remove_other_gradings(submission)
        plan = GradingPlan.from_assignment(submission.assignment)
        path = Path(submission.file.path)
        dirs = sandbox_obj = None
        if submission_format(path) in SOURCE_FORMATS:
            shape, classes = dataset_shape(plan)
            dirs = job_dirs(root=jobs_root(), key=grading_key(submission), stage="build")
            sandbox_obj = sandbox or open_sandbox()
        else:
            shape, classes = (), 0
        with heartbeat_while_running(submission_id, worker) as beat:
            output = run_build(
                path=path,
                input_shape=shape,
                num_classes=classes,
                dirs=dirs,
                sandbox=sandbox_obj,
                resources=resources_for(Status.BUILDING, submission),
                cancel=beat.lost_event,
                # The worker's own sandbox keeps the next build warm (tests pass their own).
                warm_root=jobs_root() if sandbox is None else None,
            )
        stop_if_lost(beat)
        grading.complete_build(
            submission_id=submission_id,
            worker=worker,
            model_config=output.model_config,
            training_config=output.training_config,
            log=output.log,
        )

    return _guarded(submission_id, worker, "build", body)


def execute_check(submission_id: int, *, worker: str, claimed: bool = False) -> str:
    """Claim `building -> checking` (unless `claimed`), analyse, stop on a static failure or go
    on."""
    if not claimed and not _claim(submission_id, worker, Status.BUILDING, Status.CHECKING):
        return SKIPPED
    from grader.grading.static_check import run_check

    outcome: dict[str, str] = {}

    def body() -> None:
        submission = _load(submission_id)
        plan = GradingPlan.from_assignment(submission.assignment)
        output = run_check(
            model_config=submission.model_config or {},
            declared_training=submission.training_config,
            plan=plan,
            is_late=submission.is_late,
        )
        recorded = grading.complete_check(
            submission_id=submission_id,
            worker=worker,
            checks=output.checks,
            rules=output.rules,
            training_config=output.training_config,
            score=output.recorded_score,
            stop=output.stop,
            message=output.message,
        )
        if recorded and output.stop:
            outcome["result"] = FAILED

    result = _guarded(submission_id, worker, "check", body)
    if outcome.get("result") == FAILED:
        remove_grading(submission_id)
        return FAILED
    return result


def _record_epoch_callback(submission_id: int, worker: str) -> Callable[[dict[str, Any]], None]:
    def on_epoch(record: dict[str, Any]) -> None:
        try:
            grading.record_epoch(
                submission_id=submission_id, worker=worker, epoch=record["epoch"], metrics=record
            )
        except (TypeError, ValueError):
            logger.warning("Submission %s: ignored a malformed progress record", submission_id)
        finally:
            if threading.current_thread() is not threading.main_thread():
                connection.close()

    return on_epoch


def _stored_analysis(submission: Submission) -> dict[str, Any] | None:
    """The check stage's `check_model` object: what the sandbox's network must match."""
    result = getattr(submission, "result", None)
    return result.checks if result is not None else None


def execute_train(
    submission_id: int, *, worker: str, sandbox: Any = None, claimed: bool = False
) -> str:
    """Claim `checking -> training` (unless `claimed`), train streaming epochs, send the
    evaluation."""
    if not claimed and not _claim(submission_id, worker, Status.CHECKING, Status.TRAINING):
        return SKIPPED
    from workers.pipeline.train import run_train, runs_student_code

    next_training: list[warm_train.TrainJob] = []  # the job a warm sandbox gets ready for

    def body() -> None:
        submission = _load(submission_id)
        plan = GradingPlan.from_assignment(submission.assignment)
        dataset = prepare(plan)
        path = Path(submission.file.path)
        module = path if path.suffix.lower() == ".py" else None
        custom = runs_student_code(plan, module)
        if custom:
            # Student code keeps no checkpoint: this attempt starts over, and its epochs
            # replace those an earlier (killed) attempt reported.
            grading.reset_epochs(submission_id=submission_id, worker=worker)
        spec = warm_train.TrainJob(
            train_dir=dataset.train_part_dir,
            held_out_dir=None if custom else dataset.held_out_dir,  # as `run_train` mounts
            sandbox=sandbox or open_sandbox(),
            resources=resources_for(Status.TRAINING, submission),
            gpu_device=worker_gpu_device(),
        )
        # Same key as the attempt before: `work` keeps the checkpoints to resume from (moved
        # into a claimed warm sandbox's folder, which becomes this grading's).
        dirs, runs_in = warm_train.dirs_and_sandbox(
            use_warm=sandbox is None,  # the claim checks `warm_train.enabled` itself
            given=sandbox,
            jobs_root=jobs_root(),
            key=grading_key(submission),
            spec=spec,
        )
        next_training.append(spec)
        if sandbox is None and warm_evaluate.enabled(spec.sandbox):
            # Its evaluation imports Keras while this trains.
            limit = spec.resources.wall_seconds
            warm_evaluate.start(idle_seconds=limit + 60, **_evaluate_job(submission, dataset))
        if sandbox is None and stage_rows.training_follows(submission):
            # The next training's sandbox imports Keras now, while this one trains (on a GPU
            # host: while the GPU works), not between the two. Alone, it starts after.
            warm_train.start(jobs_root=jobs_root(), spec=spec)
        with heartbeat_while_running(submission_id, worker) as beat:
            output = run_train(
                model_config=submission.model_config or {},
                training_config=submission.training_config,
                plan=plan,
                dirs=dirs,
                train_dir=dataset.train_part_dir,
                held_out_dir=dataset.held_out_dir,
                sandbox=runs_in,
                resources=spec.resources,
                on_epoch=_record_epoch_callback(submission_id, worker),
                analysis=_stored_analysis(submission),
                submission_path=module,
                gpu_device=worker_gpu_device(),
                cancel=beat.lost_event,
            )
        stop_if_lost(beat)
        # The result's epochs are authoritative (a line may have been missed while streaming).
        on_epoch = _record_epoch_callback(submission_id, worker)
        numbers = [r["epoch"] for r in output.epochs if isinstance(r.get("epoch"), int)]
        for record in output.epochs:
            if isinstance(record.get("epoch"), int):
                on_epoch(record)
        grading.reset_epochs(submission_id=submission_id, worker=worker, keep=numbers)
        log = output.log
        if output.resumed_from_epoch:
            log += f"\nTraining resumed from the checkpoint of epoch {output.resumed_from_epoch}.\n"
        if custom and submission.attempts:
            log += (
                f"\nCustom training started over (attempt {submission.attempts + 1}): the "
                "submission's own training loop keeps no checkpoint.\n"
            )
        grading.complete_training(
            submission_id=submission_id,
            worker=worker,
            epochs_run=len(output.epochs),
            training_seconds=output.seconds,
            log=log,
            custom_training=output.custom_training,
        )

    outcome = _guarded(submission_id, worker, "train", body)
    warm_evaluate.after_training(succeeded=outcome == DONE)
    if sandbox is None and next_training:
        # This process's next training (likely of the same assignment) skips the import.
        warm_train.start(jobs_root=jobs_root(), spec=next_training[0])
    return outcome


def _evaluate_job(submission: Submission, dataset: Any) -> dict[str, Any]:
    """What decides the evaluate job of a trained submission (`warm_evaluate.evaluate_job`)."""
    resources = resources_for(Status.EVALUATING, submission)
    return dict(jobs_root=jobs_root(), key=grading_key(submission), test_dir=dataset.test_dir,
        held_out_dir=dataset.held_out_dir, sandbox=open_sandbox(), resources=resources,
        gpu_device=worker_gpu_device())  # fmt: skip


def execute_evaluate(
    submission_id: int, *, worker: str, sandbox: Any = None, claimed: bool = False
) -> str:
    """Claim `training|checking -> evaluating` (unless `claimed`), evaluate on the test split,
    send finalize."""
    submission = _load(submission_id)
    plan = GradingPlan.from_assignment(submission.assignment)
    from_status = Status.TRAINING if plan.trains else Status.CHECKING
    if not claimed and not _claim(submission_id, worker, from_status, Status.EVALUATING):
        return SKIPPED
    from workers.pipeline.evaluate import run_evaluate

    def body() -> None:
        current = _load(submission_id)
        dataset = prepare(plan)
        warm = sandbox is None and plan.trains  # the one `execute_train` started, if it fits
        dirs, runs_in = warm_evaluate.dirs_and_sandbox(
            warm, sandbox, **_evaluate_job(current, dataset)
        )
        common: dict[str, Any] = {
            "analysis": _stored_analysis(current),
            "dirs": dirs,
            "test_dir": dataset.test_dir,
            "sandbox": runs_in,
            "resources": resources_for(Status.EVALUATING, current),
            "gpu_device": worker_gpu_device(),
        }
        with heartbeat_while_running(submission_id, worker) as beat:
            common["cancel"] = beat.lost_event
            if plan.trains:
                output = run_evaluate(
                    model_config=current.model_config,
                    weights_path=trained_weights_of(jobs_root() / grading_key(current) / "train"),
                    held_out_dir=dataset.held_out_dir,
                    **common,
                )
            else:
                output = run_evaluate(keras_path=Path(current.file.path), **common)
        stop_if_lost(beat)
        grading.complete_evaluation(
            submission_id=submission_id,
            worker=worker,
            accuracy=output.accuracy,
            loss=output.loss,
            per_class_accuracy=output.per_class_accuracy,
            confusion_matrix=output.confusion_matrix,
            log=output.log,
            validation=output.validation,
        )

    outcome = _guarded(submission_id, worker, "evaluate", body)
    if outcome == DONE:  # at once, not behind the preflight queue; its task then finds it done
        try:
            execute_finalize(submission_id)
        except Exception:  # the finalize task, sent all the same, retries or gives up
            logger.warning("Submission %s: finalize left to its task", submission_id, exc_info=True)
    return outcome


def execute_finalize(submission_id: int) -> str:
    """Decide the training rules, score, and end the grading (exactly once).

    `finished` when every rule passed; a failed rule (decided after training, or a static one
    the assignment did not stop on) ends it `failed/rules` with the failed rules' messages, as
    the check stage does and as `grade_file` reports (`finalize.final_failure`).
    """
    from grader.grading.verdict import compute_verdict, final_failure

    submission = _load(submission_id)
    if submission.status != Status.EVALUATING or submission.worker:
        logger.info("Submission %s is not waiting to be finalized; skipped", submission_id)
        return SKIPPED
    result = getattr(submission, "result", None)
    plan = GradingPlan.from_assignment(submission.assignment)
    checks = (result.checks if result is not None else None) or {}
    custom = checks.get("custom_training")
    if not isinstance(custom, bool):  # trained before the train stage recorded it
        is_module = submission.file_format == Submission.FileFormat.PYTHON
        custom = plan.allow_custom_training and is_module
    measured = (checks.get("validation") or {}).get("accuracy")
    epochs = list(submission.epochs.values("epoch", "val_accuracy", "accuracy", "loss"))
    verdict = compute_verdict(
        plan=plan,
        model_config=submission.model_config or {},
        epochs=epochs,
        test_accuracy=result.accuracy if result is not None else None,
        is_late=submission.is_late,
        training_config=submission.training_config,
        custom_training=custom,
        measured_val_accuracy=measured if isinstance(measured, int | float) else None,
    )
    reason, message = final_failure(verdict.rules)
    if not grading.finalize(
        submission_id=submission_id,
        rules=verdict.rules,
        passed=verdict.passed,
        score=verdict.score,
        reason=reason,
        message=message,
    ):
        return SKIPPED
    remove_grading(submission_id)
    return DONE


def give_up(submission_id: int, *, stage: str, error: BaseException) -> bool:
    """End a submission as `error/infrastructure` after the task's retries ran out."""
    close_old_connections()
    return grading.mark_error(
        submission_id=submission_id,
        worker="",
        message=f"The {stage} stage kept failing for reasons outside the submission "
        f"({type(error).__name__}). An instructor can regrade it.",
        stage=stage,
        log=str(getattr(error, "log", "") or error),
    )
