"""The task that runs each grading stage and the queue it is sent to: the one table of both.

The site sends tasks by these names (`assignments.dispatch`, `services.grading`) and the worker
registers and routes them (`workers.tasks`, `workers.celery`). Plain strings and no Django:
`workers.celery` reads it before Django is set up, and `assignments` never imports `workers`.
"""

from __future__ import annotations

from typing import NamedTuple

PREFLIGHT = "preflight"  # CPU: build, check, finalize
GPU = "gpu"  # train, evaluate: one worker process per GPU
MAINTENANCE = "maintenance"  # the reaper
QUEUES = (PREFLIGHT, GPU, MAINTENANCE)


class StageTask(NamedTuple):
    """A task's registered name and the queue its messages go to."""

    name: str
    queue: str


#: Per stage, keyed by the status the stage runs in (`Submission.Status` values; `finished`
#: stands for the finalize step).
STAGE_TASKS: dict[str, StageTask] = {
    "building": StageTask("workers.build_submission", PREFLIGHT),
    "checking": StageTask("workers.check_submission", PREFLIGHT),
    "training": StageTask("workers.train_submission", GPU),
    "evaluating": StageTask("workers.evaluate_submission", GPU),
    "finished": StageTask("workers.finalize_submission", PREFLIGHT),
}
#: The reaper, sent by Celery beat.
REAP_TASK = StageTask("workers.reap_stale_submissions", MAINTENANCE)


def task_routes() -> dict[str, dict[str, str]]:
    """Celery's `task_routes`: every task of the table to its queue."""
    return {task.name: {"queue": task.queue} for task in (*STAGE_TASKS.values(), REAP_TASK)}
