"""Hand a stage to a worker that is free: the next submission in the fair order.

A stage task's message (`workers.build_submission`, ...) is a wake-up call for one stage of its
kind, not an order to grade one submission: the worker that takes it asks `claim_next` which
submission's stage to run now, and the database answers with the first row of the fair order
(`selectors.queue_order`). Every submission that starts waiting for a stage sends one such
message (upload, stage completion, reaper, restart), so there are always at least as many
messages as waiting stages; a message that finds nothing to do (another took the stage) ends.

Exactly once: the pick and the claim run in one transaction. On PostgreSQL the pick locks its
row and skips rows other transactions hold (`FOR UPDATE SKIP LOCKED`), so two workers asking
at the same moment get the first and the second submission; on SQLite every writing
transaction takes the database's write lock when it begins (`BEGIN IMMEDIATE`), so they take
turns. The claim itself is `grading.claim_stage`'s conditional UPDATE, as before: a dead
worker, a lost message, the reaper, a cancel or a regrade are handled as they always were.
"""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django.db.models import Q

from assignments.models import Submission
from assignments.selectors.queue_order import order_sql
from assignments.services import grading

logger = logging.getLogger(__name__)

Status = Submission.Status

#: Claims tried per call before giving up (a claim only fails when the row moved on meanwhile).
MAX_CLAIM_TRIES = 5
#: Seconds before a stage this call could not take is offered again (a row lock is brief).
RETRY_SECONDS = 1.0


def take_over(*, stage: str, worker: str) -> int | None:
    """Resume the stage an earlier run of the same task left running (its pool process was
    killed and Celery redelivered the message): `grading.claim_stage`'s takeover.

    Returns:
        The submission taken over, or None (no such stage, or past `GRADER_MAX_ATTEMPTS`).
    """
    token = grading.task_token(worker)
    if not token:
        return None
    left = (
        Submission.objects.filter(status=stage)
        .filter(Q(worker__endswith=f"#{token}") | Q(worker__contains=f"#{token}."))
        .exclude(worker=worker)
        .select_related("assignment")
        .order_by("pk")
    )
    for submission in left:
        from_status = grading.previous_status(stage=stage, mode=submission.assignment.mode)
        if grading.claim_stage(
            submission_id=submission.pk, from_status=from_status, to_status=stage, worker=worker
        ):
            return submission.pk
    return None


def _first_waiting(stage: str, max_training_seconds: int | None) -> tuple[int, str] | None:
    sql, params = order_sql(stage, max_training_seconds=max_training_seconds, lock=True, limit=1)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return (int(row[0]), str(row[1])) if row else None


def _still_waiting(stage: str) -> int | None:
    """A submission waiting for `stage` that this call could not take (locked by another
    transaction, or a training too long for the message's time limits), if any."""
    sql, params = order_sql(stage, limit=1)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return int(row[0]) if row else None


def claim_next(*, stage: str, worker: str, max_training_seconds: int | None = None) -> int | None:
    """Claim the next `stage` in the fair order for `worker`.

    Args:
        stage: the running status of the stage (`building`, `checking`, `training`,
            `evaluating`).
        worker: the owner name of this run (`workers.tasks.worker_name`).
        max_training_seconds: the longest training this run's Celery time limits can hold:
            a training of an assignment with a longer time limit is left to another message.

    Returns:
        The id of the submission whose stage `worker` now owns, or None when no stage of this
        kind waits. A stage the call saw waiting but could not take (locked by another
        transaction, or too long for this message) gets a fresh message, so none is left
        without one.
    """
    taken = take_over(stage=stage, worker=worker)
    if taken is not None:
        return taken
    for _ in range(MAX_CLAIM_TRIES):
        with transaction.atomic():
            row = _first_waiting(stage, max_training_seconds)
            if row is None:
                left = _still_waiting(stage)
                if left is not None:
                    _send_again(stage, left)
                return None
            submission_id, status = row
            if grading.claim_stage(
                submission_id=submission_id, from_status=status, to_status=stage, worker=worker
            ):
                return submission_id
    return None


def _send_again(stage: str, submission_id: int) -> None:
    submission = Submission.objects.select_related("assignment").get(pk=submission_id)
    logger.info(
        "No %s stage could be taken now; sending its task again for submission %s",
        stage,
        submission_id,
    )
    grading.send_stage_task(
        submission_id=submission_id,
        stage=stage,
        assignment=submission.assignment,
        countdown=RETRY_SECONDS,
    )
