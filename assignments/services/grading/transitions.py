"""Stage transitions: the stage -> task table, next and previous stage, sending a stage's task.

Also the errors every grading write raises (`GradingError`, `InvalidTransition`).
"""

from __future__ import annotations

from typing import Any

from assignments.dispatch import send_after_commit
from assignments.models import Assignment, Submission
from assignments.services.grading.limits import dispatch_limits
from assignments.stage_tasks import REAP_TASK as REAP_STAGE_TASK
from assignments.stage_tasks import STAGE_TASKS
from grader.errors import GraderError

Status = Submission.Status
Reason = Submission.Reason

#: When each stage began, per status.
STAGE_TIMESTAMP = {
    Status.QUEUED: "queued_at",
    Status.BUILDING: "building_at",
    Status.CHECKING: "checking_at",
    Status.TRAINING: "training_at",
    Status.EVALUATING: "evaluating_at",
}

RUNNING_STATUSES = (Status.BUILDING, Status.CHECKING, Status.TRAINING, Status.EVALUATING)

BUILD_TASK = STAGE_TASKS[Status.BUILDING].name
CHECK_TASK = STAGE_TASKS[Status.CHECKING].name
TRAIN_TASK = STAGE_TASKS[Status.TRAINING].name
EVALUATE_TASK = STAGE_TASKS[Status.EVALUATING].name
FINALIZE_TASK = STAGE_TASKS[Status.FINISHED].name
REAP_TASK = REAP_STAGE_TASK.name

#: The task that runs each stage, and its queue (`assignments.stage_tasks`, the one table).
STAGE_TASK = STAGE_TASKS


class GradingError(GraderError):
    """A grading write that the submission's current state does not allow."""

    error_code = "grading"


class InvalidTransition(GradingError):
    """The submission is not in a state this operation applies to (e.g. cancelling a graded one)."""

    error_code = "invalid_transition"


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
