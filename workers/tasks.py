"""Celery tasks: thin wrappers that run one pipeline stage.

A stage task's message is a wake-up call for its queue: the run asks the dispatcher
(`assignments.services.dispatcher.claim_next`) for the stage that comes first in the queue's
fair order now, and runs that one (a `train_submission` run may evaluate); the submission id it
carries is the one whose progress sent it. Every
task is idempotent: the claim is a conditional status transition, so a duplicate message finds
nothing waiting (or the stage owned, or done) and returns. Tasks are sent late-acknowledged
(`acks_late`, `reject_on_worker_lost`): a worker that dies mid-stage leaves the message to be
redelivered, and the redelivered task (same task id) takes its stage over at once, resuming
from the stage's checkpoints; the reaper recovers the submission from its stale heartbeat when
no redelivery comes. A stage whose submission is cancelled (or taken over) while it runs kills its
sandbox within seconds and returns `aborted`, writing nothing.

Retry policy: only infrastructure problems are retried (the sandbox could not run, the database
or Docker API failed), with exponential backoff up to `MAX_RETRIES`, after which the submission
ends as `error/infrastructure`. A bad model, a failed rule or a timeout is a verdict: never
retried.
"""

from __future__ import annotations

import logging
import os
import socket

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, close_old_connections

from assignments.stage_tasks import REAP_TASK, STAGE_TASKS
from workers.pipeline.errors import InfrastructureError

logger = logging.getLogger(__name__)

MAX_RETRIES = 5
BACKOFF_BASE_SECONDS = 15
BACKOFF_MAX_SECONDS = 600

try:  # the Docker SDK is optional on hosts that only use bubblewrap
    from docker.errors import DockerException
except ImportError:  # pragma: no cover - docker is a base requirement
    DockerException = InfrastructureError  # type: ignore[assignment,misc]

RETRYABLE = (InfrastructureError, DatabaseError, DockerException)

# Queues come from `task_routes` in workers/celery.py (one table for every task; Celery 5.7
# deprecates the per-task `queue` attribute), and every send names its queue explicitly.

TASK_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": MAX_RETRIES,
}

# Preflight tasks may arrive without per-message limits (the site's first build is sent by
# `assignments.dispatch`): these defaults nest around the build sandbox's wall time like
# `assignments.services.grading.stage_limits`. GPU tasks always carry per-assignment limits.
_BUILD_SECONDS = int(settings.GRADER_BUILD_SECONDS)
_GRACE_SECONDS = int(settings.GRADER_SANDBOX_GRACE_SECONDS)
PREFLIGHT_OPTIONS = {
    **TASK_OPTIONS,
    "soft_time_limit": _BUILD_SECONDS + _GRACE_SECONDS,
    "time_limit": _BUILD_SECONDS + 2 * _GRACE_SECONDS,
}


def worker_name(task: Task) -> str:
    """A unique owner name for this run: `node[/gpuN]#task-id-prefix.run`.

    The part before `#` names the worker process (and its GPU): the dashboard groups by it.
    The task id prefix lets a redelivered task take its stage over from its killed earlier run
    (`grading.claim_stage`); the run suffix tells the runs apart, so an earlier run that is
    still alive loses the stage instead of sharing it.
    """
    node = task.request.hostname or f"local@{socket.gethostname()}"
    gpu = os.environ.get("GRADER_GPU_DEVICE", "").strip()
    if gpu:
        node = f"{node}/gpu{gpu}"
    token = (task.request.id or os.urandom(4).hex())[:12].replace(".", "-").replace("#", "-")
    return f"{node}#{token}.{os.urandom(3).hex()}"


def backoff_seconds(retries: int) -> int:
    """Exponential backoff: 15 s, 30 s, 60 s, ... capped at 10 minutes."""
    return int(min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * (2**retries)))


def _retry_or_give_up(
    task: Task, submission_id: int | None, stage: str, exc: BaseException
) -> None:
    """Retry the task with backoff, or end the submission it held as `error/infrastructure`.

    `submission_id` is None when the failure came before a stage was claimed (the database
    did not answer the dispatcher): there is nothing to end, only the message to retry.
    """
    from workers.pipeline import stages

    if task.request.retries >= task.max_retries or (
        isinstance(exc, InfrastructureError) and not exc.retry
    ):
        logger.error(
            "Submission %s: %s gave up after %s retries", submission_id, stage, task.request.retries
        )
        if submission_id is not None:
            stages.give_up(submission_id, stage=stage, error=exc)
        return
    countdown = backoff_seconds(task.request.retries)
    logger.warning(
        "Submission %s: %s infrastructure error (%s); retry in %s s",
        submission_id,
        stage,
        exc,
        countdown,
    )
    if isinstance(exc, DatabaseError):
        # Drop a connection the failure left broken, so the retry connects afresh. A worker
        # does this before every task anyway; an eager run (CELERY_TASK_ALWAYS_EAGER, tests)
        # retries in place and would otherwise reuse the dead connection every time.
        close_old_connections()
    raise task.retry(exc=exc, countdown=countdown)


#: The stage name (for logs and messages) of each running status.
STAGE_NAME = {
    "building": "build",
    "checking": "check",
    "training": "train",
    "evaluating": "evaluate",
}
#: The queue each stage task's message wakes a worker of (`assignments.stage_tasks`).
STAGE_QUEUE = {stage: STAGE_TASKS[status].queue for status, stage in STAGE_NAME.items()}


def training_budget(task: Task) -> int | None:
    """The longest training (sandbox seconds) this run's Celery time limits can hold, or None
    when it runs without a hard limit."""
    from assignments.services import grading

    limits = task.request.timelimit or (None, None)
    hard = limits[0] or getattr(task, "time_limit", None)
    if not hard:
        return None
    return int(hard) - 2 * grading.grading_setting("GRADER_SANDBOX_GRACE_SECONDS")


def _run_stage(task: Task, hint: int, sent_for: str) -> str:
    """Run the stage that comes first in the fair order of this task's queue now.

    `hint` is the submission whose progress sent this message, for its `sent_for` stage; the
    dispatcher may hand this run another stage of the same queue, of another submission
    (`assignments.services.dispatcher.claim_next`), or the one an earlier run of this very
    task left when its process was killed.
    """
    from assignments.services import dispatcher
    from workers.pipeline import stages

    worker = worker_name(task)
    queue = STAGE_QUEUE[sent_for]
    runners = {
        "build": stages.execute_build,
        "check": stages.execute_check,
        "train": stages.execute_train,
        "evaluate": stages.execute_evaluate,
    }
    submission_id: int | None = None
    stage = sent_for
    try:
        claim = dispatcher.claim_next(
            queue=queue,
            worker=worker,
            max_training_seconds=training_budget(task) if queue == "gpu" else None,
        )
        if claim is None:
            logger.info("No %s stage is waiting (message for submission %s)", queue, hint)
            return stages.SKIPPED
        submission_id, stage = claim.submission_id, STAGE_NAME[claim.stage]
        if (submission_id, stage) != (hint, sent_for):
            logger.info("Submission %s: %s handed out in fair order", submission_id, stage)
        return runners[stage](submission_id, worker=worker, claimed=True)
    except ObjectDoesNotExist:
        logger.info("Submission %s no longer exists; %s skipped", submission_id, stage)
        return stages.SKIPPED
    except SoftTimeLimitExceeded:
        # The sandbox's own timeout should have fired first: the sandbox failed to enforce it.
        from assignments.services import grading

        if submission_id is not None:
            grading.mark_error(
                submission_id=submission_id,
                worker=worker,
                message=f"The {stage} stage overran its time limit on the worker.",
                stage=stage,
            )
        return stages.ERROR
    except RETRYABLE as exc:
        _retry_or_give_up(task, submission_id, stage, exc)
        return stages.ERROR


@shared_task(name=STAGE_TASKS["building"].name, **PREFLIGHT_OPTIONS)
def build_submission(self: Task, submission_id: int) -> str:
    """Build stage: `queued -> building`; `.py` modules run in the sandbox, configs are read.

    Idempotent (conditional claim); retries infrastructure errors only.
    """
    return _run_stage(self, submission_id, "build")


@shared_task(name=STAGE_TASKS["checking"].name, **PREFLIGHT_OPTIONS)
def check_submission(self: Task, submission_id: int) -> str:
    """Check stage: static analysis and rules on the host; stops on a static failure.

    Idempotent (conditional claim); retries infrastructure errors only.
    """
    return _run_stage(self, submission_id, "check")


@shared_task(name=STAGE_TASKS["training"].name, **TASK_OPTIONS)
def train_submission(self: Task, submission_id: int) -> str:
    """Train stage, on this worker's GPU: epochs stream into `EpochMetric` rows.

    Idempotent (conditional claim); resumes from checkpoints after a killed worker; retries
    infrastructure errors only.
    """
    return _run_stage(self, submission_id, "train")


@shared_task(name=STAGE_TASKS["evaluating"].name, **TASK_OPTIONS)
def evaluate_submission(self: Task, submission_id: int) -> str:
    """Evaluate stage: test-split metrics, never with student code.

    Idempotent (conditional claim); retries infrastructure errors only.
    """
    return _run_stage(self, submission_id, "evaluate")


@shared_task(name=STAGE_TASKS["finished"].name, **PREFLIGHT_OPTIONS)
def finalize_submission(self: Task, submission_id: int) -> str:
    """Finalize: training-decided rules, score, late policy; marks the submission finished.

    Idempotent (the final write is conditional on `evaluating` with no owner); retries database
    errors only.
    """
    from workers.pipeline import stages

    try:
        return stages.execute_finalize(submission_id)
    except DatabaseError as exc:
        _retry_or_give_up(self, submission_id, "finalize", exc)
        return stages.ERROR
    except Exception as exc:
        logger.exception("Submission %s: finalize failed", submission_id)
        stages.give_up(submission_id, stage="finalize", error=exc)
        return stages.ERROR


@shared_task(name=REAP_TASK.name, acks_late=True)
def reap_stale_submissions() -> list[int]:
    """Re-send stages whose worker went silent, and waiting submissions whose message was lost;
    resume the submissions waiting for a dataset that is now installed.

    Safe to run concurrently with workers and with itself (row locks, conditional claims).
    """
    from assignments.services import data_wait, grading

    timeout = grading.grading_setting("GRADER_HEARTBEAT_TIMEOUT")
    acted = grading.requeue_stale(older_than_seconds=timeout)
    if acted:
        logger.warning("Reaper acted on submissions %s", acted)
    # Submissions parked for a missing dataset go on once an operator has put it in place.
    resumed = data_wait.resume_ready()
    return acted + resumed
