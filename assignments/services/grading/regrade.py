"""Regrade and cancel, called from the site."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from assignments.dispatch import enqueue_submission
from assignments.models import AuditEntry, EpochMetric, Result, Submission
from assignments.services import fair_share
from assignments.services.grading.transitions import InvalidTransition
from assignments.services.regrade_snapshot import keep_previous_results

Status = Submission.Status
Reason = Submission.Reason


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
