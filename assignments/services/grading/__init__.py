"""Writes for grading: stage transitions, results, epochs, regrades, cancellations and the reaper.

The database row is the source of truth for a submission's progress; the broker only carries
wake-up calls. Two fields encode who owns a submission:

- ``status`` is the stage the submission is in (``queued``, ``building``, ..., ``evaluating``);
- ``worker`` is the owner of that stage while it runs, and empty once the stage is done and the
  next stage's task has been sent (or, for ``queued``, before the build started).

So ``status="training", worker=""`` means "training finished, evaluation pending", and
``status="training", worker="gpu0@host#1a2b"`` means "training now, on that worker". Every stage
starts with a conditional UPDATE (`claim_stage`) and every later write checks the owner again,
so a duplicate message, a redelivered task or a worker the reaper gave up on can never write a
second verdict: a submission is graded exactly once per (re)grade.

`assignments` never imports `workers`: tasks are sent by name (see `assignments.dispatch`).

The package follows the state machine's jobs: `transitions` (the stage -> task table, next and
previous stage), `limits` (nested time limits), `ownership` (claim, heartbeat, epochs, complete,
mark, release), `regrade` (regrade and cancel) and `recovery` (the reaper, `requeue_stages_of`).
Callers import from the package; the names below are its public surface.
"""

from __future__ import annotations

from assignments.services.grading.limits import (
    StageLimits,
    dispatch_limits,
    grading_setting,
    stage_limits,
)
from assignments.services.grading.ownership import (
    LOG_LIMIT_CHARS,
    MAX_EPOCH,
    _owned,
    claim_stage,
    complete_build,
    complete_check,
    complete_evaluation,
    complete_training,
    finalize,
    finite_or_none,
    heartbeat,
    mark_error,
    mark_failed,
    record_epoch,
    release_stage,
    reset_epochs,
    task_token,
)
from assignments.services.grading.recovery import requeue_stages_of, requeue_stale
from assignments.services.grading.regrade import (
    cancel_submission,
    regrade_assignment,
    regrade_submission,
)
from assignments.services.grading.transitions import (
    BUILD_TASK,
    CHECK_TASK,
    EVALUATE_TASK,
    FINALIZE_TASK,
    REAP_TASK,
    RUNNING_STATUSES,
    STAGE_TASK,
    STAGE_TIMESTAMP,
    TRAIN_TASK,
    GradingError,
    InvalidTransition,
    Reason,
    Status,
    next_stage,
    previous_status,
    send_stage_task,
)

__all__ = [
    "BUILD_TASK",
    "CHECK_TASK",
    "EVALUATE_TASK",
    "FINALIZE_TASK",
    "LOG_LIMIT_CHARS",
    "MAX_EPOCH",
    "REAP_TASK",
    "RUNNING_STATUSES",
    "STAGE_TASK",
    "STAGE_TIMESTAMP",
    "TRAIN_TASK",
    "GradingError",
    "InvalidTransition",
    "Reason",
    "StageLimits",
    "Status",
    "_owned",
    "cancel_submission",
    "claim_stage",
    "complete_build",
    "complete_check",
    "complete_evaluation",
    "complete_training",
    "dispatch_limits",
    "finalize",
    "finite_or_none",
    "grading_setting",
    "heartbeat",
    "mark_error",
    "mark_failed",
    "next_stage",
    "previous_status",
    "record_epoch",
    "regrade_assignment",
    "regrade_submission",
    "release_stage",
    "requeue_stages_of",
    "requeue_stale",
    "reset_epochs",
    "send_stage_task",
    "stage_limits",
    "task_token",
]
