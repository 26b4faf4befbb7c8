"""The rows a running stage reads: its submission, and whether its worker still owns it.

The workers' stage functions (`workers.pipeline.stages`, `workers.pipeline.heartbeat`) read rows
only through here and write them only through `assignments.services.grading`.
"""

from __future__ import annotations

from assignments.models import Submission
from assignments.services.grading import RUNNING_STATUSES


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
