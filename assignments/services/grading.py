"""Writes for grading: stage transitions, results, epochs, regrades, cancellations and the reaper.

The database row is the source of truth for a submission's progress; the broker only carries
wake-up calls. Two fields encode who owns a submission:

- ``status`` is the stage the submission is in (``queued``, ``building``, ..., ``evaluating``);
- ``worker`` is the owner of that stage while it runs, and empty once the stage is done and the
  next stage's task has been sent (or, for ``queued``, before the build started).

So ``status="training", worker=""`` means "training finished, evaluation pending", and
``status="training", worker="gpu0@host#1a2b"`` means "training now, on that worker". Every stage
starts with a conditional UPDATE (`claim_stage`) and every later write checks the owner again,
so a duplicate message, a redelivered task or a worker the reaper gave up on can never write a
second verdict: a submission is graded exactly once per (re)grade.

`assignments` never imports `workers`: tasks are sent by name (see `assignments.dispatch`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from assignments.dispatch import enqueue_submission, send_after_commit
from assignments.models import Assignment, AuditEntry, EpochMetric, Result, Submission
from assignments.services import fair_share
from assignments.services.regrade_snapshot import keep_previous_results
from grader.errors import GraderError

logger = logging.getLogger(__name__)

Status = Submission.Status
Reason = Submission.Reason

#: The captured sandbox output kept per submission; the head of older output is dropped.
LOG_LIMIT_CHARS = 1_000_000
#: The largest epoch number accepted from a progress report.
MAX_EPOCH = 100_000

#: When each stage began, per status.
STAGE_TIMESTAMP = {
    Status.QUEUED: "queued_at",
    Status.BUILDING: "building_at",
    Status.CHECKING: "checking_at",
    Status.TRAINING: "training_at",
    Status.EVALUATING: "evaluating_at",
}

RUNNING_STATUSES = (Status.BUILDING, Status.CHECKING, Status.TRAINING, Status.EVALUATING)

BUILD_TASK = "workers.build_submission"
CHECK_TASK = "workers.check_submission"
TRAIN_TASK = "workers.train_submission"
EVALUATE_TASK = "workers.evaluate_submission"
FINALIZE_TASK = "workers.finalize_submission"
REAP_TASK = "workers.reap_stale_submissions"

#: The task that runs each stage, and its queue.
STAGE_TASK = {
    Status.BUILDING: (BUILD_TASK, "preflight"),
    Status.CHECKING: (CHECK_TASK, "preflight"),
    Status.TRAINING: (TRAIN_TASK, "gpu"),
    Status.EVALUATING: (EVALUATE_TASK, "gpu"),
    Status.FINISHED: (FINALIZE_TASK, "preflight"),
}


class GradingError(GraderError):
    """A grading write that the submission's current state does not allow."""

    kind = "grading"


class InvalidTransition(GradingError):
    """The submission is not in a state this operation applies to (e.g. cancelling a graded one)."""

    kind = "invalid_transition"


# --- Configuration ------------------------------------------------------------------------------


def grading_setting(name: str, default: int) -> int:
    """An integer grading setting: Django settings first, then the environment, then `default`.

    Read at call time (not import time) so tests and `run_worker` can change them per process.
    """
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


@dataclass(frozen=True)
class StageLimits:
    """Nested limits of one stage: sandbox wall time < Celery soft limit < Celery hard limit."""

    sandbox_seconds: int
    soft_time_limit: int
    time_limit: int


def stage_limits(*, stage: str, assignment: Assignment) -> StageLimits:
    """The time limits of `stage` for `assignment`.

    The sandbox's own wall-clock timeout fires first and yields a `timeout` verdict; the Celery
    soft limit (sandbox + grace) only fires if the sandbox failed to enforce its limit, and the
    hard limit kills a worker stuck even after that.
    """
    if stage == Status.TRAINING:
        seconds = int(assignment.time_limit_seconds)
    elif stage == Status.EVALUATING:
        seconds = grading_setting("GRADER_EVALUATE_SECONDS", 600)
    else:  # build and check (check runs on the host, in pure Python, well within this)
        seconds = grading_setting("GRADER_BUILD_SECONDS", 300)
    grace = grading_setting("GRADER_SANDBOX_GRACE_SECONDS", 60)
    return StageLimits(
        sandbox_seconds=seconds,
        soft_time_limit=seconds + grace,
        time_limit=seconds + 2 * grace,
    )


# --- The state machine --------------------------------------------------------------------------


def next_stage(*, status: str, mode: str) -> str:
    """The stage that follows a finished `status` (`queued` counts as finished waiting).

    `Status.FINISHED` stands for the finalize step.
    """
    if status == Status.QUEUED:
        return Status.BUILDING
    if status == Status.BUILDING:
        return Status.CHECKING
    if status == Status.CHECKING:
        return Status.EVALUATING if mode == Assignment.Mode.EVALUATE else Status.TRAINING
    if status == Status.TRAINING:
        return Status.EVALUATING
    if status == Status.EVALUATING:
        return Status.FINISHED
    raise InvalidTransition(f"Status `{status}` has no next stage.")


def previous_status(*, stage: str, mode: str) -> str:
    """The waiting status a running `stage` was claimed from (used to hand it back)."""
    if stage == Status.BUILDING:
        return Status.QUEUED
    if stage == Status.CHECKING:
        return Status.BUILDING
    if stage == Status.TRAINING:
        return Status.CHECKING
    if stage == Status.EVALUATING:
        return Status.CHECKING if mode == Assignment.Mode.EVALUATE else Status.TRAINING
    raise InvalidTransition(f"Status `{stage}` is not a running stage.")


def dispatch_limits(*, stage: str, assignment: Assignment) -> StageLimits:
    """The time limits a stage task's message carries.

    The message is a wake-up call for one stage of its queue: the worker that takes it runs the
    stage that comes first in the queue's fair order (`services.dispatcher`). So a `gpu`
    message holds the longest training of any assignment, or an evaluation; the sandbox still
    stops each stage at its own limit, and `claim_next` never hands a message a training longer
    than its limits hold. Build and check share their limit.
    """
    if stage not in (Status.TRAINING, Status.EVALUATING):
        return stage_limits(stage=stage, assignment=assignment)
    longest = Assignment.objects.aggregate(longest=Max("time_limit_seconds"))["longest"] or 0
    seconds = max(
        int(longest),
        int(assignment.time_limit_seconds),
        grading_setting("GRADER_EVALUATE_SECONDS", 600),
    )
    grace = grading_setting("GRADER_SANDBOX_GRACE_SECONDS", 60)
    return StageLimits(
        sandbox_seconds=seconds, soft_time_limit=seconds + grace, time_limit=seconds + 2 * grace
    )


def send_stage_task(
    *, submission_id: int, stage: str, assignment: Assignment, countdown: float | None = None
) -> None:
    """Send the task running `stage`, with its nested time limits, once the transaction commits.

    The submission id is a hint for the logs: the worker runs the stage that comes first in the
    queue's fair order when it is free (`services.dispatcher.claim_next`).
    """
    task_name, queue = STAGE_TASK[stage]
    options: dict[str, Any] = {"queue": queue}
    if stage != Status.FINISHED:
        limits = dispatch_limits(stage=stage, assignment=assignment)
        options.update(soft_time_limit=limits.soft_time_limit, time_limit=limits.time_limit)
    if countdown:
        options["countdown"] = countdown
    send_after_commit(task_name, submission_id=submission_id, **options)


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
            max_attempts = grading_setting("GRADER_MAX_ATTEMPTS", 3)
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


# --- Regrade and cancel (called from the site) ---------------------------------------------


def _reset_fields(now: Any) -> dict[str, Any]:
    return {
        "status": Status.QUEUED,
        "reason": Reason.NONE,
        "message": "",
        "queued_at": now,
        "building_at": None,
        "checking_at": None,
        "training_at": None,
        "evaluating_at": None,
        "finished_at": None,
        "worker": "",
        "heartbeat_at": None,
        "attempts": 0,
        "model_config": None,
        "training_config": None,
        "log": "",
    }


# A regrade keeps the Result row (an instructor's score override survives) but clears every
# number the previous grading computed, so nothing stale is shown while it runs again.
_RESULT_RESET = {
    "checks": {},
    "rules": [],
    "passed": None,
    "params_total": None,
    "params_trainable": None,
    "accuracy": None,
    "loss": None,
    "per_class_accuracy": None,
    "confusion_matrix": None,
    "training_seconds": None,
    "epochs_run": None,
    "score": None,
}


def regrade_submission(*, submission_id: int, actor: Any) -> Submission:
    """Grade a submission again from the start, with the assignment's current rules.

    Resets it to `queued` (a running stage loses ownership and its writes are refused) in the
    student's next fair round (`fair_share.next_round`, as a new upload), deletes its epochs,
    clears the computed result (keeping any score override), records an `AuditEntry` and
    enqueues the build after commit.

    Raises:
        Submission.DoesNotExist: No such submission.
    """
    with transaction.atomic():
        submission = (
            Submission.objects.select_for_update(of=("self",))
            .select_related("assignment")
            .get(pk=submission_id)
        )
        previous = {"status": submission.status, "reason": submission.reason}
        keep_previous_results([submission.pk])
        for field, value in _reset_fields(timezone.now()).items():
            setattr(submission, field, value)
        submission.fair_round = fair_share.next_round(
            course_id=submission.assignment.course_id,
            user_id=submission.student_id,
            exclude_ids=[submission.pk],
        )
        submission.save()
        EpochMetric.objects.filter(submission=submission).delete()
        Result.objects.filter(submission=submission).update(**_RESULT_RESET)
        AuditEntry.objects.create(
            actor=actor,
            action="regrade",
            assignment_id=submission.assignment_id,
            submission=submission,
            details={"previous": previous},
        )
        enqueue_submission(submission.pk)
    return submission


def regrade_assignment(*, assignment_id: int, actor: Any) -> int:
    """Regrade every submission of an assignment (cancelled ones excepted).

    Returns:
        The number of submissions queued again.
    """
    with transaction.atomic():
        queryset = Submission.objects.select_for_update().filter(assignment_id=assignment_id)
        ids = list(queryset.exclude(status=Status.CANCELLED).values_list("pk", flat=True))
        if not ids:
            return 0
        keep_previous_results(ids)
        by_round: dict[int, list[int]] = {}
        for submission_id, fair_round in fair_share.rounds_for_regrade(ids).items():
            by_round.setdefault(fair_round, []).append(submission_id)
        Submission.objects.filter(pk__in=ids).update(**_reset_fields(timezone.now()))
        for fair_round, members in by_round.items():
            Submission.objects.filter(pk__in=members).update(fair_round=fair_round)
        EpochMetric.objects.filter(submission_id__in=ids).delete()
        Result.objects.filter(submission_id__in=ids).update(**_RESULT_RESET)
        AuditEntry.objects.create(
            actor=actor,
            action="regrade_assignment",
            assignment_id=assignment_id,
            details={"submissions": len(ids)},
        )
        for submission_id in ids:
            enqueue_submission(submission_id)
    return len(ids)


def cancel_submission(*, submission_id: int, actor: Any) -> Submission:
    """Stop grading a submission, for its student or an instructor (the caller checks which).

    A running stage loses ownership at once: its worker notices within seconds
    (`GRADER_CANCEL_CHECK_SECONDS`), kills the sandbox and writes nothing more. The message
    names who cancelled; a cancelled submission still counts toward the daily quota.

    Raises:
        Submission.DoesNotExist: No such submission.
        InvalidTransition: The grading already ended.
    """
    with transaction.atomic():
        submission = Submission.objects.select_for_update().get(pk=submission_id)
        if submission.status not in Submission.OPEN_STATUSES:
            raise InvalidTransition(
                f"Submission #{submission.pk} is {submission.status}. "
                "Expected a queued or running submission to cancel."
            )
        previous = submission.status
        by = "student" if actor is not None and actor.pk == submission.student_id else "instructor"
        submission.status = Status.CANCELLED
        submission.worker = ""
        submission.finished_at = timezone.now()
        submission.message = _cancelled_message(actor, by)
        submission.save(update_fields=["status", "worker", "finished_at", "message"])
        AuditEntry.objects.create(
            actor=actor,
            action="cancel",
            assignment_id=submission.assignment_id,
            submission=submission,
            details={"previous": {"status": previous}, "by": by},
        )
    return submission


def _cancelled_message(actor: Any, by: str) -> str:
    if actor is None:
        return "Cancelled by an instructor."
    role = "the student" if by == "student" else "an instructor"
    return f"Cancelled by {actor.get_username()} ({role})."


# --- The reaper ---------------------------------------------------------------------------------


def _resend_lost_stage(
    submission: Submission, *, now: Any, max_attempts: int, why: str, given_up: str
) -> None:
    """Hand a stage whose worker is gone back to its waiting state and send its task again;
    past `max_attempts`, end the submission as `error/infrastructure` with `given_up`.
    The caller holds the row locked (select_for_update) in a transaction."""
    stage = submission.status
    if submission.attempts + 1 >= max_attempts:
        logger.warning(
            "Giving up on submission %s after %s attempts", submission.pk, submission.attempts + 1
        )
        _terminate(
            submission, Status.ERROR, Reason.INFRASTRUCTURE, given_up, stage="reaper", log=""
        )
        submission.save()
        return
    logger.warning(
        "Re-sending %s of submission %s: worker %s %s", stage, submission.pk, submission.worker, why
    )
    submission.status = previous_status(stage=stage, mode=submission.assignment.mode)
    submission.worker = ""
    submission.attempts += 1
    submission.heartbeat_at = now
    submission.save(update_fields=["status", "worker", "attempts", "heartbeat_at"])
    send_stage_task(submission_id=submission.pk, stage=stage, assignment=submission.assignment)


def _resend_lost_stages(
    rows: Any, *, now: Any, why: str, given_up: Callable[[Submission], str]
) -> list[int]:
    """`_resend_lost_stage` for each running submission of `rows` (a queryset filtered from
    `_running_locked()`); returns their ids."""
    max_attempts = grading_setting("GRADER_MAX_ATTEMPTS", 3)
    acted: list[int] = []
    for submission in rows.order_by("pk"):
        acted.append(submission.pk)
        _resend_lost_stage(
            submission, now=now, max_attempts=max_attempts, why=why, given_up=given_up(submission)
        )
    return acted


def _running_locked() -> Any:
    """Running stages, locked for the caller's transaction (rows another reaper holds skipped)."""
    return (
        Submission.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("assignment")
        .filter(status__in=RUNNING_STATUSES)
    )


def requeue_stages_of(*, node: str, started_at: Any) -> list[int]:
    """Re-send at once the stages a worker node owned before it (re)started.

    Called when the worker `node` (Celery's node name, `-n`) is ready: a running stage owned
    by `node` (owner `node#...`, or `node/gpuN#...` for its pool processes' GPUs) whose last
    heartbeat (or claim) predates `started_at`, the start of this run of the node, belongs to
    an earlier run of it, killed outright (SIGKILL, the host rebooted); a stage this run has
    already claimed is left alone. Without this the stage waits for the reaper's heartbeat
    timeout (`GRADER_HEARTBEAT_TIMEOUT`, 5 minutes by default). Like the reaper's re-send, it counts
    as an attempt and resumes from the stage's checkpoints.

    Node names must be unique among running workers (Celery warns about duplicates): a second
    worker started under a name already running would take its stages over, and the first would
    stop them within seconds (fenced out, nothing graded twice).

    Returns:
        The ids of the submissions re-sent (or given up).
    """
    if not node or "#" in node:
        return []
    with transaction.atomic():
        orphaned = (
            _running_locked()
            .filter(Q(worker__startswith=f"{node}#") | Q(worker__startswith=f"{node}/gpu"))
            .filter(Q(heartbeat_at__lt=started_at) | Q(heartbeat_at__isnull=True))
        )
        return _resend_lost_stages(
            orphaned,
            now=timezone.now(),
            why="was restarted",
            given_up=lambda submission: (
                f"The grading worker was stopped during {submission.status} "
                f"{submission.attempts + 1} times (last: `{submission.worker}`). An "
                "instructor can regrade it."
            ),
        )


def requeue_stale(
    *, older_than_seconds: int, waiting_older_than_seconds: int | None = None
) -> list[int]:
    """Recover submissions whose worker died or whose task message was lost.

    - A running stage whose heartbeat is older than `older_than_seconds` is handed back to its
      waiting state and its task sent again; `attempts` counts these, and past
      `GRADER_MAX_ATTEMPTS` the submission ends as `error/infrastructure`.
    - A waiting submission (queued, or between stages) untouched for longer than
      `waiting_older_than_seconds` (default `GRADER_QUEUE_TIMEOUT`, 900 s) gets its next task
      sent again, e.g. after the broker lost its queues. If the first message still exists, the
      duplicate finds the stage claimed and does nothing.

    Returns:
        The ids of the submissions acted upon (re-sent or given up).
    """
    now = timezone.now()
    if waiting_older_than_seconds is None:
        waiting_older_than_seconds = grading_setting("GRADER_QUEUE_TIMEOUT", 900)
    running_cutoff = now - timedelta(seconds=older_than_seconds)
    waiting_cutoff = now - timedelta(seconds=waiting_older_than_seconds)
    with transaction.atomic():
        stale_running = (
            _running_locked()
            .exclude(worker="")
            .filter(Q(heartbeat_at__lt=running_cutoff) | Q(heartbeat_at__isnull=True))
        )
        acted = _resend_lost_stages(
            stale_running,
            now=now,
            why="went silent",
            given_up=lambda submission: (
                f"The grading worker stopped responding during {submission.status} "
                f"{submission.attempts + 1} times (last: `{submission.worker}`). Expected a "
                f"heartbeat at least every {older_than_seconds:,} seconds. An instructor "
                "can regrade it."
            ),
        )

        waiting = (
            Submission.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("assignment")
            .filter(status__in=Submission.ACTIVE_STATUSES, worker="")
            .annotate(touched=Coalesce("heartbeat_at", "queued_at", "created_at"))
            .filter(touched__lt=waiting_cutoff)
            .order_by("pk")
        )
        for submission in waiting:
            acted.append(submission.pk)
            logger.warning(
                "Re-sending the next task of waiting submission %s (%s)",
                submission.pk,
                submission.status,
            )
            # Touching the row spaces re-sends out by the waiting timeout, so a long but healthy
            # queue gains at most one duplicate message per submission per period.
            Submission.objects.filter(pk=submission.pk).update(heartbeat_at=now)
            send_stage_task(
                submission_id=submission.pk,
                stage=next_stage(status=submission.status, mode=submission.assignment.mode),
                assignment=submission.assignment,
            )
    return acted


# --- Reads for the dashboard ------------------------------------------------------------------


def queue_stats() -> dict[str, Any]:
    """Queue lengths and running stages, for the instructors' dashboard.

    Returns:
        `{"queues": {queue: {"waiting", "running"}}, "gpus": {worker node: running},
        "stalled": n, "oldest_waiting": {"submission_id", "status", "since", "seconds"} | None}`
        where `gpus` counts the stages running on each GPU worker (its node name) and `stalled`
        the running stages whose heartbeat is older than `GRADER_HEARTBEAT_TIMEOUT`.
    """
    now = timezone.now()
    queues: dict[str, dict[str, int]] = {
        name: {"waiting": 0, "running": 0} for name in ("preflight", "gpu")
    }
    gpus: dict[str, int] = {}
    stalled = 0
    stale_before = now - timedelta(seconds=grading_setting("GRADER_HEARTBEAT_TIMEOUT", 300))
    oldest: dict[str, Any] | None = None
    rows = (
        Submission.objects.filter(status__in=Submission.ACTIVE_STATUSES)
        .annotate(touched=Coalesce("heartbeat_at", "queued_at", "created_at"))
        .values_list("pk", "status", "worker", "heartbeat_at", "touched", "assignment__mode")
        .order_by()
    )
    for pk, status, worker, beat, touched, mode in rows.iterator():
        if worker:
            queue = STAGE_TASK[status][1]
            queues[queue]["running"] += 1
            if queue == "gpu":
                node = worker.split("#", 1)[0]
                gpus[node] = gpus.get(node, 0) + 1
            if beat is None or beat < stale_before:
                stalled += 1
            continue
        queue = STAGE_TASK[next_stage(status=status, mode=mode)][1]
        queues[queue]["waiting"] += 1
        if oldest is None or touched < oldest["since"]:
            oldest = {"submission_id": pk, "status": status, "since": touched}
    if oldest is not None:
        oldest["seconds"] = (now - oldest["since"]).total_seconds()
    return {"queues": queues, "gpus": gpus, "stalled": stalled, "oldest_waiting": oldest}
