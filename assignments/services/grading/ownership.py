"""Ownership of a running stage: claim, heartbeat, epochs, complete, mark failed or error, release.

Every write checks the owner (`worker`) again, so a worker that lost its stage writes nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from assignments.models import EpochMetric, Result, Submission
from assignments.services.grading.limits import grading_setting
from assignments.services.grading.transitions import (
    RUNNING_STATUSES,
    STAGE_TIMESTAMP,
    next_stage,
    previous_status,
    send_stage_task,
)

logger = logging.getLogger("assignments.services.grading")

Status = Submission.Status
Reason = Submission.Reason

#: The captured sandbox output kept per submission; the head of older output is dropped.
LOG_LIMIT_CHARS = 1_000_000
#: The largest epoch number accepted from a progress report.
MAX_EPOCH = 100_000


def _append_log(existing: str, stage: str, text: str) -> str:
    if not text:
        return existing
    combined = f"{existing}==> {stage}\n{text.rstrip()}\n"
    if len(combined) <= LOG_LIMIT_CHARS:
        return combined
    dropped = len(combined) - LOG_LIMIT_CHARS
    return f"[{dropped:,} earlier characters dropped]\n" + combined[dropped:]


def claim_stage(*, submission_id: int, from_status: str, to_status: str, worker: str) -> bool:
    """Take ownership of a stage: one conditional UPDATE, so exactly one racing worker wins.

    Args:
        submission_id: The submission.
        from_status: The waiting status the stage starts from (it must have no owner).
        to_status: The running status of the stage.
        worker: A unique name of this attempt (`node#token`); later writes must present it.

    A redelivery takes its stage over: when the submission is already in `to_status`, owned
    by another run of the same task (same task id, see `task_token`), the task's earlier run was
    lost (its pool process killed, the message requeued by `reject_on_worker_lost`) and this run
    becomes the owner at once, resuming from the stage's checkpoints instead of waiting for the
    reaper. Each run has its own name, so an earlier run that is in fact still alive loses the
    stage: its heartbeat notices within seconds and stops its sandbox, and its writes are
    refused. A takeover counts as an attempt like a re-queue by the reaper; past
    `GRADER_MAX_ATTEMPTS` it is refused and the reaper ends the submission.

    Returns:
        True if this worker now owns the stage; False if someone else does, or the submission
        moved on (finished, cancelled, regraded): the caller logs and returns.
    """
    now = timezone.now()
    fields: dict[str, Any] = {"status": to_status, "worker": worker, "heartbeat_at": now}
    fields[STAGE_TIMESTAMP[to_status]] = now
    with transaction.atomic():
        updated = Submission.objects.filter(pk=submission_id, status=from_status, worker="").update(
            **fields
        )
        token = task_token(worker)
        if not updated and token:
            max_attempts = grading_setting("GRADER_MAX_ATTEMPTS")
            updated = (
                Submission.objects.filter(pk=submission_id, status=to_status)
                .filter(Q(worker__endswith=f"#{token}") | Q(worker__contains=f"#{token}."))
                .exclude(worker=worker)
                .filter(attempts__lt=max_attempts - 1)
                .update(attempts=F("attempts") + 1, **fields)
            )
            if updated:
                logger.warning(
                    "Submission %s: %s taken over by %s (the task was redelivered)",
                    submission_id,
                    to_status,
                    worker,
                )
    return updated == 1


def task_token(worker: str) -> str:
    """The task id part of an owner name `node#task-id-prefix[.run]` ("" when it has none).

    Runs of the same task (a redelivery) share it; `workers.tasks.worker_name` builds the name.
    """
    _, sep, rest = worker.rpartition("#")
    return rest.split(".", 1)[0] if sep else ""


def heartbeat(*, submission_id: int, worker: str) -> bool:
    """Refresh the running stage's heartbeat; False means the worker no longer owns it."""
    with transaction.atomic():
        updated = Submission.objects.filter(
            pk=submission_id, worker=worker, status__in=RUNNING_STATUSES
        ).update(heartbeat_at=timezone.now())
    return updated == 1


def _owned(submission_id: int, worker: str, status: str | None = None) -> Submission | None:
    """The submission locked for update, if `worker` still owns its running stage.

    `worker=""` matches a waiting (unowned) active submission instead.
    """
    queryset = Submission.objects.select_for_update(of=("self",)).filter(
        pk=submission_id, worker=worker
    )
    if status:
        queryset = queryset.filter(status=status)
    else:
        statuses = Submission.ACTIVE_STATUSES if worker == "" else RUNNING_STATUSES
        queryset = queryset.filter(status__in=statuses)
    return queryset.select_related("assignment").first()


def finite_or_none(value: Any) -> float | None:
    """`value` as a float, or None when missing or not finite.

    A diverged training reports NaN losses; stored as NULL they stay valid JSON for the API.

    Raises:
        ValueError / TypeError: `value` is not a number at all.
    """
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def record_epoch(
    *, submission_id: int, worker: str, epoch: int, metrics: Mapping[str, float | None]
) -> bool:
    """Store one finished training epoch (idempotent per epoch) and refresh the heartbeat.

    A resumed training reports its earlier epochs again: `update_or_create` on
    (submission, epoch) keeps one row each.

    Returns:
        False if the worker no longer owns the training (nothing written).
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"Epoch {epoch!r} is not an epoch number. Expected 0 to {MAX_EPOCH:,}.")
    fields = {
        key: finite_or_none(metrics.get(key))
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
    }
    with transaction.atomic():
        submission = _owned(submission_id, worker, Status.TRAINING)
        if submission is None:
            return False
        EpochMetric.objects.update_or_create(
            submission_id=submission_id, epoch=epoch, defaults=fields
        )
        Submission.objects.filter(pk=submission_id).update(heartbeat_at=timezone.now())
    return True


def reset_epochs(*, submission_id: int, worker: str, keep: Iterable[int] = ()) -> bool:
    """Delete a running training's recorded epochs, except those numbered in `keep`.

    A custom training keeps no checkpoint: after a killed worker it starts over, so the epochs
    the earlier attempt reported are dropped before it runs again (replaced, never appended).
    Once a training ended, only the epochs of its result are kept.

    Returns:
        False if the worker no longer owns the training (nothing deleted).
    """
    with transaction.atomic():
        submission = _owned(submission_id, worker, Status.TRAINING)
        if submission is None:
            return False
        EpochMetric.objects.filter(submission_id=submission_id).exclude(
            epoch__in=list(keep)
        ).delete()
    return True


def _merge_checks(submission: Submission, entries: Mapping[str, Any]) -> None:
    """Add keys to the result's `checks` object (the submission row is locked by the caller)."""
    result = Result.objects.filter(submission=submission).first()
    if result is not None:
        result.checks = {**(result.checks or {}), **entries}
        result.save(update_fields=["checks", "updated_at"])


def _finish_stage(submission: Submission, *, stage: str, log: str) -> None:
    """Hand the submission to the next stage: no owner, fresh timestamp, next task sent."""
    submission.worker = ""
    submission.heartbeat_at = timezone.now()
    submission.log = _append_log(submission.log, stage, log)
    submission.save(
        update_fields=["worker", "heartbeat_at", "log", "model_config", "training_config"]
    )
    following = next_stage(status=submission.status, mode=submission.assignment.mode)
    send_stage_task(submission_id=submission.pk, stage=following, assignment=submission.assignment)


def complete_build(
    *,
    submission_id: int,
    worker: str,
    model_config: dict[str, Any],
    training_config: dict[str, Any] | None,
    log: str = "",
) -> bool:
    """Record the built model config and send the check stage. False if no longer the owner."""
    with transaction.atomic():
        submission = _owned(submission_id, worker, Status.BUILDING)
        if submission is None:
            return False
        submission.model_config = model_config
        submission.training_config = training_config
        _finish_stage(submission, stage="build", log=log)
    return True


def complete_check(
    *,
    submission_id: int,
    worker: str,
    checks: dict[str, Any],
    rules: Sequence[dict[str, Any]],
    training_config: dict[str, Any] | None,
    score: float | None,
    stop: bool,
    message: str = "",
) -> bool:
    """Record the static report; then either stop with a `rules` failure or send the next stage.

    Args:
        checks: The `check_model` object.
        rules: The static rule results (`RuleResult.to_dict()`).
        training_config: The validated training config the training stage will use.
        score: The score from the static rules (used when stopping here).
        stop: True when a static rule failed and the assignment stops on static failures: the
            model never reaches a GPU.
        message: The failure message when stopping.
    """
    with transaction.atomic():
        submission = _owned(submission_id, worker, Status.CHECKING)
        if submission is None:
            return False
        assignment = submission.assignment
        params = checks.get("params") or {}
        Result.objects.update_or_create(
            submission=submission,
            defaults={
                "rules_version": assignment.rules_version,
                "rules_yaml": assignment.rules_yaml,
                "checks": checks,
                "rules": list(rules),
                # A failed static rule already decides the verdict, even when grading goes on.
                "passed": False if any(r.get("passed") is False for r in rules) else None,
                "params_total": params.get("total"),
                "params_trainable": params.get("trainable"),
                "score": score if stop else None,
            },
        )
        submission.training_config = training_config
        if stop:
            _terminate(submission, Status.FAILED, Reason.RULES, message, stage="check", log="")
            submission.save()
        else:
            _finish_stage(submission, stage="check", log="")
    return True


def complete_training(
    *,
    submission_id: int,
    worker: str,
    epochs_run: int,
    training_seconds: float,
    log: str = "",
    custom_training: bool = False,
) -> bool:
    """Record the training totals (epochs are already stored) and send the evaluation.

    Args:
        custom_training: The submission's own code ran the training (decided by the worker, not
            reported by the sandbox): stored as `Result.checks["custom_training"]`; finalize
            then decides accuracy from the grader's own measurement, not from the epochs.
    """
    with transaction.atomic():
        submission = _owned(submission_id, worker, Status.TRAINING)
        if submission is None:
            return False
        Result.objects.filter(submission=submission).update(
            epochs_run=epochs_run, training_seconds=training_seconds
        )
        _merge_checks(submission, {"custom_training": bool(custom_training)})
        _finish_stage(submission, stage="train", log=log)
    return True


def complete_evaluation(
    *,
    submission_id: int,
    worker: str,
    accuracy: float,
    loss: float | None,
    per_class_accuracy: Sequence[float] | None,
    confusion_matrix: Sequence[Sequence[int]] | None,
    log: str = "",
    validation: Mapping[str, Any] | None = None,
) -> bool:
    """Record the test-split metrics and send the finalize step.

    Args:
        validation: The trained weights measured on the held-out validation part of the train
            split (`{"accuracy", "loss", "num_examples", "validation_split"}`), stored
            as `Result.checks["validation"]`.
    """
    with transaction.atomic():
        submission = _owned(submission_id, worker, Status.EVALUATING)
        if submission is None:
            return False
        if validation is not None:
            measured = {
                **validation,
                "accuracy": finite_or_none(validation.get("accuracy")),
                "loss": finite_or_none(validation.get("loss")),
            }
            _merge_checks(submission, {"validation": measured})
        Result.objects.filter(submission=submission).update(
            accuracy=finite_or_none(accuracy),
            loss=finite_or_none(loss),
            per_class_accuracy=list(per_class_accuracy) if per_class_accuracy is not None else None,
            confusion_matrix=[list(row) for row in confusion_matrix]
            if confusion_matrix is not None
            else None,
        )
        _finish_stage(submission, stage="evaluate", log=log)
    return True


def finalize(
    *,
    submission_id: int,
    rules: Sequence[dict[str, Any]],
    passed: bool | None,
    score: float | None,
    reason: str = "",
    message: str = "",
) -> bool:
    """Write the final verdict and end the grading (once: conditional on the state).

    Runs only on an evaluated submission with no owner (`evaluating`, evaluation done). With a
    `reason` (a rule failed: `rules`), the grading ends `failed` with `message`, as the check
    stage ends one; without, `finished`.

    Returns:
        False if the submission is not waiting for finalization (already finalized, regraded,
        cancelled): nothing is written.
    """
    with transaction.atomic():
        submission = (
            Submission.objects.select_for_update()
            .filter(pk=submission_id, status=Status.EVALUATING, worker="")
            .first()
        )
        if submission is None:
            return False
        Result.objects.filter(submission=submission).update(
            rules=list(rules), passed=passed, score=score
        )
        fields = ["status", "reason", "finished_at"]
        submission.status = Status.FAILED if reason else Status.FINISHED
        submission.reason = reason or Reason.NONE
        if reason:
            submission.message = message
            fields.append("message")
        submission.finished_at = timezone.now()
        submission.save(update_fields=fields)
    return True


def _terminate(
    submission: Submission, status: str, reason: str, message: str, *, stage: str, log: str
) -> None:
    submission.status = status
    submission.reason = reason
    submission.message = message
    submission.worker = ""
    submission.finished_at = timezone.now()
    submission.log = _append_log(submission.log, stage, log)


def mark_failed(
    *,
    submission_id: int,
    worker: str,
    reason: str,
    message: str,
    stage: str,
    log: str = "",
    details: Mapping[str, Any] | None = None,
) -> bool:
    """End the grading with a student-caused verdict (`rules`, `build_error`, `timeout`, ...).

    Args:
        details: Entries added to the result's `checks` (e.g. ``built_model``: the differences
            behind an `invalid_submission`, shown to instructors only); needs the result row
            the check stage wrote, else they are dropped.

    Returns:
        False if `worker` no longer owns the running stage (nothing written).
    """
    if reason == Reason.INFRASTRUCTURE:
        raise ValueError("An infrastructure problem is an error, not a failure: use mark_error.")
    with transaction.atomic():
        submission = _owned(submission_id, worker)
        if submission is None:
            return False
        _terminate(submission, Status.FAILED, reason, message, stage=stage, log=log)
        submission.save()
        if details:
            result = Result.objects.select_for_update().filter(submission=submission).first()
            if result is not None:
                result.checks = {**(result.checks or {}), **details}
                result.save(update_fields=["checks"])
    return True


def mark_error(
    *,
    submission_id: int,
    worker: str | None,
    message: str,
    stage: str,
    log: str = "",
    reason: str = Reason.INFRASTRUCTURE,
) -> bool:
    """End the grading with an infrastructure error (not the student's fault; not counted).

    Args:
        worker: The owner; None to end it whatever owns it (used by the reaper).
    """
    with transaction.atomic():
        if worker is None:
            submission = (
                Submission.objects.select_for_update()
                .filter(pk=submission_id, status__in=Submission.ACTIVE_STATUSES)
                .first()
            )
        else:
            submission = _owned(submission_id, worker)
        if submission is None:
            return False
        _terminate(submission, Status.ERROR, reason, message, stage=stage, log=log)
        submission.save()
    return True


def release_stage(*, submission_id: int, worker: str) -> bool:
    """Hand a running stage back (status to its waiting state, no owner) so a retry can claim it.

    Used before retrying an infrastructure error. False if `worker` no longer owns it.
    """
    with transaction.atomic():
        submission = _owned(submission_id, worker)
        if submission is None:
            return False
        submission.status = previous_status(
            stage=submission.status, mode=submission.assignment.mode
        )
        submission.worker = ""
        submission.heartbeat_at = timezone.now()
        submission.save(update_fields=["status", "worker", "heartbeat_at"])
    return True
