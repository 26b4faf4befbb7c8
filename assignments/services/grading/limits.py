"""Stage time limits: the nested sandbox < soft < hard limits of each stage and its message."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Max

from assignments.models import Assignment, Submission
from grader.grading.plan import GradingPlan, StageLimits

Status = Submission.Status


def grading_setting(name: str) -> int:
    """An integer grading limit, declared once in `config/settings/base.py` (from the environment).

    Read at call time (not import time) so tests can change them per process.
    """
    return int(getattr(settings, name))


def host_limits() -> dict[str, int]:
    """This host's stage limits (`config/settings/base.py`), as `GradingPlan.stage_limits` takes."""
    return {
        "build_seconds": grading_setting("GRADER_BUILD_SECONDS"),
        "evaluate_seconds": grading_setting("GRADER_EVALUATE_SECONDS"),
        "grace_seconds": grading_setting("GRADER_SANDBOX_GRACE_SECONDS"),
    }


def stage_limits(*, stage: str, assignment: Assignment) -> StageLimits:
    """The time limits of `stage` for `assignment` (`GradingPlan.stage_limits`)."""
    return GradingPlan.from_assignment(assignment).stage_limits(stage, **host_limits())


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
    return StageLimits.nested(seconds, grading_setting("GRADER_SANDBOX_GRACE_SECONDS"))
