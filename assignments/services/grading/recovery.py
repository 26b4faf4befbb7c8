"""Recovery: the reaper (`requeue_stale`) and a restarted node's stages (`requeue_stages_of`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from assignments.models import Submission
from assignments.services.grading.limits import grading_setting
from assignments.services.grading.ownership import _terminate
from assignments.services.grading.transitions import (
    RUNNING_STATUSES,
    next_stage,
    previous_status,
    send_stage_task,
)

logger = logging.getLogger("assignments.services.grading")

Status = Submission.Status
Reason = Submission.Reason


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
    max_attempts = grading_setting("GRADER_MAX_ATTEMPTS")
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
        waiting_older_than_seconds = grading_setting("GRADER_QUEUE_TIMEOUT")
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
