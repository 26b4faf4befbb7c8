"""Submissions whose training waits for a dataset the workers do not have yet.

A model is built and checked without any image: its static rules, hints and layer table are
shown whatever the dataset's state. Only the stages that read images (train, evaluate) need the
dataset; when it is not installed on the worker, the stage parks the submission here instead of
ending it as an error:

- `park_for_data` moves the running stage to ``waiting_data`` (no owner, no task pending), with
  a message for the student that names no host path and no command, and marks it
  ``quota_exempt`` (within a bound, see below);
- nothing dispatches a parked submission: ``waiting_data`` is not in
  `Submission.ACTIVE_STATUSES`, which every dispatcher and the reaper select from;
- `resume_waiting` hands the parked submissions of one dataset back to the pipeline
  (``checking``, no owner: "checked, next stage pending") and sends their next stage's task.
  Two hooks call it: the ``prepare_dataset`` and ``fetch_dataset`` commands once they
  succeed, and the reaper's periodic tick (`resume_ready`), which prepares each awaited
  dataset whose raw files have appeared (an operator who copied them in) and resumes its
  submissions.

The instructors are told through their dashboard and the queue-health page, which list the
datasets and the submissions waiting for each, with the command that installs it.

Quota: a parked submission does not count toward the student's daily quota (the missing data
is the course's doing, not theirs), but at most `daily_quota` of a student's submissions to one
assignment may wait exempt at once; later ones wait too, counted as usual, so an outage never
turns into unlimited training once the data arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from assignments.models import Submission
from assignments.services import grading

logger = logging.getLogger(__name__)

Status = Submission.Status


def waiting_message(*, evaluate: bool, exempt: bool) -> str:
    """What the student reads while their submission waits: no host path, no command (the
    course staff see those on their dashboard)."""
    stage, done = ("Evaluation", "evaluated") if evaluate else ("Training", "trained")
    text = (
        f"{stage} is not available yet: the course staff has been told. The checks below are "
        f"complete; your model will be {done} automatically once the dataset is installed"
    )
    exempt_note = ", and this submission does not count toward your daily limit."
    return text + (exempt_note if exempt else ".")


WAITING_MESSAGE = waiting_message(evaluate=False, exempt=True)


def park_for_data(*, submission_id: int, worker: str, dataset: str, detail: str) -> bool:
    """Take a running stage out of the pipeline until its dataset is installed.

    Args:
        submission_id: the submission whose train or evaluate stage found no prepared dataset.
        worker: the stage's owner; a superseded worker parks nothing.
        dataset: the registered name of the missing dataset.
        detail: why it is missing, for operators: logged, never shown to the student.

    Returns:
        False if `worker` no longer owns the running stage (nothing written).
    """
    with transaction.atomic():
        submission = grading._owned(submission_id, worker)
        if submission is None:
            return False
        exempt_waiting = Submission.objects.filter(
            assignment_id=submission.assignment_id,
            student_id=submission.student_id,
            status=Status.WAITING_DATA,
            quota_exempt=True,
        ).count()
        exempt = submission.quota_exempt or exempt_waiting < submission.assignment.daily_quota
        submission.status = Status.WAITING_DATA
        submission.worker = ""
        submission.heartbeat_at = timezone.now()
        submission.quota_exempt = exempt
        submission.message = waiting_message(
            evaluate=submission.assignment.mode == submission.assignment.Mode.EVALUATE,
            exempt=exempt,
        )
        submission.save(
            update_fields=["status", "worker", "heartbeat_at", "quota_exempt", "message"]
        )
    logger.warning(
        "Submission %s waits for dataset `%s`, which this host has not installed: %s",
        submission_id,
        dataset,
        detail,
    )
    return True


def resume_waiting(*, dataset: str) -> list[int]:
    """Send the submissions waiting for `dataset` on to their next stage (train or evaluate).

    Call it once `dataset` is installed where the workers read it. Idempotent: a submission
    already resumed (or cancelled, regraded) is not touched again. Each resumed submission is
    ``checking`` with no owner again (checked, next stage pending) and its next stage's task
    is sent after commit; the quota exemption stays.

    Returns:
        The ids of the submissions resumed.
    """
    with transaction.atomic():
        waiting = list(
            Submission.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("assignment")
            .filter(status=Status.WAITING_DATA, assignment__dataset=dataset)
            .order_by("created_at", "pk")
        )
        now = timezone.now()
        for submission in waiting:
            submission.status = Status.CHECKING
            submission.worker = ""
            submission.heartbeat_at = now
            submission.message = ""
            submission.save(update_fields=["status", "worker", "heartbeat_at", "message"])
            grading.send_stage_task(
                submission_id=submission.pk,
                stage=grading.next_stage(status=Status.CHECKING, mode=submission.assignment.mode),
                assignment=submission.assignment,
            )
    resumed = [submission.pk for submission in waiting]
    if resumed:
        logger.info("Dataset `%s` is installed: resumed submissions %s", dataset, resumed)
    return resumed


def waiting_by_dataset() -> dict[str, int]:
    """How many submissions wait for each dataset (only datasets with some)."""
    rows = (
        Submission.objects.filter(status=Status.WAITING_DATA)
        .values("assignment__dataset")
        .annotate(n=Count("pk"))
        .order_by("assignment__dataset")
    )
    return {row["assignment__dataset"]: row["n"] for row in rows}


def install_awaited_dataset(name: str) -> bool:
    """Prepare dataset `name` on this host if its raw files are there; True once it is ready.

    Cheap when nothing changed: a valid prepared copy is found from its metadata, and missing
    raw files fail at the first file looked for.
    """
    from pathlib import Path

    from django.conf import settings

    from grader.datasets import prepare_dataset
    from grader.errors import DatasetUnavailable

    try:
        prepare_dataset(name, Path(settings.GRADER_DATA_DIR), key=settings.GRADER_DATASET_KEY)
    except DatasetUnavailable:
        return False
    return True


def resume_ready(*, is_ready: Callable[[str], bool] = install_awaited_dataset) -> list[int]:
    """The periodic hook (the reaper's tick): resume the submissions of every awaited dataset
    that is ready now.

    Args:
        is_ready: says whether a dataset can be used now (by default prepares it from raw files
            an operator put in place, see `install_awaited_dataset`).

    Returns:
        The ids of the submissions resumed.
    """
    resumed: list[int] = []
    for dataset in waiting_by_dataset():
        if is_ready(dataset):
            resumed.extend(resume_waiting(dataset=dataset))
    return resumed
