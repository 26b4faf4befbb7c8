"""The Celery app.

Queues: `preflight` (CPU: build, check, finalize), `gpu` (train, evaluate: one worker process per
GPU, its device in `GRADER_GPU_DEVICE`) and `maintenance` (the reaper, every minute from beat).
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown
from django.conf import settings
from kombu import Queue

from assignments.stage_tasks import QUEUES, REAP_TASK, task_routes

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("grader")
# The default in every thread, not only the importing one: web threads send tasks too.
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = tuple(Queue(name) for name in QUEUES)
app.conf.task_routes = task_routes()
# A GPU worker takes one task at a time: a long training must not hold a second message that
# another idle GPU could run.
app.conf.worker_prefetch_multiplier = 1
app.conf.task_acks_late = True
app.conf.task_reject_on_worker_lost = True
# Long trainings: recycle the pool process after each task, so TensorFlow's memory in the
# parent never grows (the sandbox does the work; the task process only waits).
app.conf.worker_max_tasks_per_child = int(os.environ.get("CELERY_WORKER_MAX_TASKS_PER_CHILD", 50))
app.conf.beat_schedule = {
    "reap-stale-submissions": {
        "task": REAP_TASK.name,
        "schedule": float(settings.GRADER_REAPER_INTERVAL),
        "options": {"queue": REAP_TASK.queue, "expires": 55},
    },
}
app.autodiscover_tasks(["workers"])


@worker_process_init.connect
def _own_one_gpu(**_: object) -> None:
    """Give each pool process of a GPU worker its own GPU (`GRADER_GPU_DEVICE`).

    An explicit `GRADER_GPU_DEVICE` (one worker per GPU, e.g. `run_worker --gpu 1`) wins;
    otherwise pool process i takes entry i (round-robin) of `GRADER_GPU_IDS`. billiard keeps a
    replaced process' index, so a recycled process keeps its GPU.
    """
    from billiard.process import current_process

    from workers.pipeline.sandboxes import gpu_for_pool_process

    if os.environ.get("GRADER_GPU_DEVICE", "").strip():
        return
    device = gpu_for_pool_process(
        int(getattr(current_process(), "index", 0) or 0), os.environ.get("GRADER_GPU_IDS", "")
    )
    if device is not None:
        os.environ["GRADER_GPU_DEVICE"] = device


logger = logging.getLogger(__name__)
_node_started_at = None


@worker_init.connect
def _note_start(**_: object) -> None:
    from django.utils import timezone

    global _node_started_at
    _node_started_at = timezone.now()


@worker_ready.connect
def _take_back_stages_of_an_earlier_run(sender: object = None, **_: object) -> None:
    """Re-send the stages this node owned when an earlier run of it was killed outright.

    A SIGKILLed worker (its stop timeout ran out, the host rebooted) leaves its running stages
    claimed; restarted under the same node name (`-n`), it hands them back at once instead of
    leaving them to the reaper's heartbeat timeout (`grading.requeue_stages_of`).
    """
    from django.db import DatabaseError
    from django.utils import timezone

    from assignments.services import grading

    node = getattr(sender, "hostname", "") or ""
    try:
        taken = grading.requeue_stages_of(node=node, started_at=_node_started_at or timezone.now())
    except DatabaseError:  # the reaper will do it once the database answers
        logger.exception("Could not take back the stages of %s", node)
        return
    if taken:
        logger.warning("%s: re-sent the stages an earlier run of this worker left: %s", node, taken)


_presence = None


@worker_ready.connect
def _report_presence(sender: object = None, **_: object) -> None:
    """Report this worker for the queue-health page, now and every 30 s (`workers.presence`)."""
    from django.utils import timezone

    from workers.presence import PresenceReporter, describe_worker, interval_seconds

    global _presence
    _presence = PresenceReporter(
        description=describe_worker(sender),
        started_at=_node_started_at or timezone.now(),
        interval=interval_seconds(),
    )
    _presence.start()


@worker_shutdown.connect
def _report_stop(**_: object) -> None:
    """A clean stop is not a dead worker: the page says "stopped", not "silent"."""
    from django.db import DatabaseError

    from assignments.services.worker_presence import record_stopped

    if _presence is None:
        return
    _presence.stop()
    try:
        record_stopped(node=_presence.description["node"])
    except DatabaseError:
        logger.warning("Could not record that %s stopped", _presence.description["node"])
