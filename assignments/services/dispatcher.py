"""Hand a stage to a worker that is free: the next submission in the fair order.

A stage task's message (`workers.build_submission`, ...) is a wake-up call for one stage of its
queue, not an order to grade one submission: the worker that takes it asks `claim_next` which
stage of which submission to run now, and the database answers with the first row of the
queue's fair order (`selectors.queue_order`): a `workers.train_submission` message may run an
evaluation that comes first. Every submission that starts waiting for a stage sends one such
message to that stage's queue (upload, stage completion, reaper, restart), so a queue always
holds at least as many messages as stages wait in it; a message that finds nothing to do
(another took the stage) ends.

Exactly once: the pick and the claim run in one transaction. On PostgreSQL the pick locks its
row and skips rows other transactions hold (`FOR UPDATE SKIP LOCKED`), so two workers asking
at the same moment get the first and the second submission; on SQLite every writing
transaction takes the database's write lock when it begins (`BEGIN IMMEDIATE`), so they take
turns. The claim itself is `grading.claim_stage`'s conditional UPDATE, as before: a dead
worker, a lost message, the reaper, a cancel or a regrade are handled as they always were.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Q

from assignments.models import Submission
from assignments.selectors.queue_order import QUEUES, order_sql, waiting_stage
from assignments.services import grading

logger = logging.getLogger(__name__)

#: Claims tried per call before giving up (a claim only fails when the row moved on meanwhile).
MAX_CLAIM_TRIES = 5
#: Seconds before a stage this call could not take is offered again (a row lock is brief).
RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Claim:
    """A stage a worker now owns: `stage` (its running status) of `submission_id`."""

    submission_id: int
    stage: str


def take_over(*, queue: str, worker: str) -> Claim | None:
    """Resume the stage an earlier run of the same task left running (its pool process was
    killed and Celery redelivered the message): `grading.claim_stage`'s takeover.

    Returns:
        The stage taken over, or None (no such stage, or past `GRADER_MAX_ATTEMPTS`).
    """
    token = grading.task_token(worker)
    if not token:
        return None
    left = (
        Submission.objects.filter(status__in=QUEUES[queue])
        .filter(Q(worker__endswith=f"#{token}") | Q(worker__contains=f"#{token}."))
        .exclude(worker=worker)
        .select_related("assignment")
        .order_by("pk")
    )
    for submission in left:
        stage = submission.status
        from_status = grading.previous_status(stage=stage, mode=submission.assignment.mode)
        if grading.claim_stage(
            submission_id=submission.pk, from_status=from_status, to_status=stage, worker=worker
        ):
            return Claim(submission.pk, stage)
    return None


def _first_waiting(
    queue: str, max_training_seconds: int | None, *, lock: bool
) -> tuple[int, str, str] | None:
    sql, params = order_sql(queue, max_training_seconds=max_training_seconds, lock=lock, limit=1)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return (int(row[0]), str(row[1]), str(row[2])) if row else None


def claim_next(*, queue: str, worker: str, max_training_seconds: int | None = None) -> Claim | None:
    """Claim the next stage of `queue` in the fair order for `worker`.

    Args:
        queue: `preflight` (build, check) or `gpu` (train, evaluate).
        worker: the owner name of this run (`workers.tasks.worker_name`).
        max_training_seconds: the longest training this run's Celery time limits can hold:
            a training of an assignment with a longer time limit is left to another message.

    Returns:
        The stage `worker` now owns, or None when none waits in the queue. A stage the call
        saw waiting but could not take (locked by another transaction, or too long for this
        message) gets a fresh message, so none is left without one.
    """
    taken = take_over(queue=queue, worker=worker)
    if taken is not None:
        return taken
    for _ in range(MAX_CLAIM_TRIES):
        with transaction.atomic():
            row = _first_waiting(queue, max_training_seconds, lock=True)
            if row is None:
                left = _first_waiting(queue, None, lock=False)
                if left is not None:
                    _send_again(*left)
                return None
            submission_id, status, mode = row
            stage = waiting_stage(status, mode)
            if stage is not None and grading.claim_stage(
                submission_id=submission_id, from_status=status, to_status=stage, worker=worker
            ):
                return Claim(submission_id, stage)
    return None


def _send_again(submission_id: int, status: str, mode: str) -> None:
    stage = waiting_stage(status, mode)
    if stage is None:
        return
    submission = Submission.objects.select_related("assignment").get(pk=submission_id)
    logger.info(
        "Submission %s: its %s could not be taken now; sending a message for it again",
        submission_id,
        stage,
    )
    grading.send_stage_task(
        submission_id=submission_id,
        stage=stage,
        assignment=submission.assignment,
        countdown=RETRY_SECONDS,
    )
