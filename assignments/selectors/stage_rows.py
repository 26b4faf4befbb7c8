"""The rows a running stage reads: its submission, and whether its worker still owns it.

The workers' stage functions (`workers.pipeline.stages`, `workers.pipeline.heartbeat`) read rows
only through here and write them only through `assignments.services.grading`.
"""

from __future__ import annotations

from assignments.models import Submission
from assignments.services.grading import RUNNING_STATUSES

Status = Submission.Status
#: A submission in one of these is on its way to a training (unless a static rule stops it).
BEFORE_TRAINING = (Status.QUEUED, Status.BUILDING, Status.CHECKING)


def submission_for_stage(submission_id: int) -> Submission:
    """The submission with its assignment (a stage reads both).

    Raises:
        Submission.DoesNotExist: no such submission.
    """
    return Submission.objects.select_related("assignment").get(pk=submission_id)


def find_submission(submission_id: int) -> Submission | None:
    """The submission, or None when it was deleted meanwhile."""
    return Submission.objects.filter(pk=submission_id).first()


def still_owns(submission_id: int, worker: str) -> bool:
    """Whether `worker` still owns the submission's running stage: a cheap read, no lock."""
    return Submission.objects.filter(
        pk=submission_id, worker=worker, status__in=RUNNING_STATUSES
    ).exists()


def training_follows(submission: Submission) -> bool:
    """Whether another submission of the same assignment is on its way to a training: one
    index lookup, read when a training starts."""
    return (
        Submission.objects.filter(
            assignment_id=submission.assignment_id, status__in=BEFORE_TRAINING
        )
        .exclude(pk=submission.pk)
        .exists()
    )
