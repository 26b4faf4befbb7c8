"""Stage time limits: the nested sandbox < soft < hard limits of each stage and its message."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Max

from assignments.models import Assignment, Submission

Status = Submission.Status


def grading_setting(name: str) -> int:
    """An integer grading limit, declared once in `config/settings/base.py` (from the environment).

    Read at call time (not import time) so tests can change them per process.
    """
    return int(getattr(settings, name))


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
        seconds = grading_setting("GRADER_EVALUATE_SECONDS")
    else:  # build and check (check runs on the host, in pure Python, well within this)
        seconds = grading_setting("GRADER_BUILD_SECONDS")
    grace = grading_setting("GRADER_SANDBOX_GRACE_SECONDS")
    return StageLimits(
        sandbox_seconds=seconds,
        soft_time_limit=seconds + grace,
        time_limit=seconds + 2 * grace,
    )


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
        grading_setting("GRADER_EVALUATE_SECONDS"),
    )
    grace = grading_setting("GRADER_SANDBOX_GRACE_SECONDS")
    return StageLimits(
        sandbox_seconds=seconds, soft_time_limit=seconds + grace, time_limit=seconds + 2 * grace
    )
