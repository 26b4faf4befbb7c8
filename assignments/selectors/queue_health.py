"""What the queue-health page shows beyond queue lengths: workers alive per queue, the stages
running now with their age, recent infrastructure errors. (Queue lengths: `selectors.queue_stats`;
datasets: `selectors.datasets`.)"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from assignments.models import Submission, WorkerPresence
from assignments.permissions import instructed_course_ids
from assignments.services.grading import RUNNING_STATUSES, STAGE_TASK, grading_setting

QUEUES = ("preflight", "gpu", "maintenance")
#: Missed reports before a worker counts as silent (it reports every 30 s).
SILENT_AFTER_REPORTS = 3
RECENT_ERRORS = 10


@dataclass(frozen=True)
class WorkerRow:
    """One worker node as the page shows it."""

    node: str
    queues: list[str]
    sandbox: str
    gpus: list[str]
    concurrency: int | None
    started_at: dt.datetime
    last_seen: dt.datetime
    seconds_since: float
    state: str  # "alive", "silent" (no report for a while) or "stopped" (shut down cleanly)


@dataclass(frozen=True)
class RunningStage:
    """A stage some worker runs now."""

    submission_id: int
    assignment: str
    status: str
    worker: str
    seconds: float  # since the stage started
    heartbeat_seconds: float | None  # since the worker's last heartbeat
    stale: bool  # no heartbeat within GRADER_HEARTBEAT_TIMEOUT: the reaper will re-send it


def workers(now: dt.datetime | None = None) -> list[WorkerRow]:
    """Every worker that ever reported, alive ones first."""
    now = now or timezone.now()
    interval = grading_setting("GRADER_WORKER_PRESENCE_SECONDS")
    rows = []
    for w in WorkerPresence.objects.all():
        since = (now - w.last_seen).total_seconds()
        if w.stopped_at is not None and w.stopped_at >= w.last_seen:
            state = "stopped"
        elif since > SILENT_AFTER_REPORTS * interval:
            state = "silent"
        else:
            state = "alive"
        rows.append(
            WorkerRow(
                node=w.node,
                queues=list(w.queues),
                sandbox=w.sandbox,
                gpus=list(w.gpus),
                concurrency=w.concurrency,
                started_at=w.started_at,
                last_seen=w.last_seen,
                seconds_since=since,
                state=state,
            )
        )
    order = {"alive": 0, "silent": 1, "stopped": 2}
    rows.sort(key=lambda r: (order[r.state], r.node))
    return rows


def workers_by_queue(rows: list[WorkerRow]) -> list[dict]:
    """Per queue: how many workers consume it alive, and the last time any was seen."""
    table = []
    for queue in QUEUES:
        consuming = [r for r in rows if queue in r.queues]
        alive = [r for r in consuming if r.state == "alive"]
        table.append(
            {
                "queue": queue,
                "alive": len(alive),
                "workers": len(consuming),
                "last_seen": max((r.last_seen for r in consuming), default=None),
            }
        )
    return table


def running_stages(now: dt.datetime | None = None) -> list[RunningStage]:
    """The stages running now, oldest first."""
    now = now or timezone.now()
    stale_after = grading_setting("GRADER_HEARTBEAT_TIMEOUT")
    stamps = {"building": "building_at", "checking": "checking_at", "training": "training_at",
              "evaluating": "evaluating_at"}  # fmt: skip
    rows = (
        Submission.objects.filter(status__in=RUNNING_STATUSES)
        .exclude(worker="")
        .values_list("pk", "assignment__slug", "status", "worker", "heartbeat_at", *stamps.values())
    )
    stages = []
    for pk, slug, status, worker, beat, *started in rows:
        began = dict(zip(stamps.values(), started, strict=True)).get(stamps[status]) or beat or now
        beat_seconds = (now - beat).total_seconds() if beat else None
        stages.append(
            RunningStage(
                submission_id=pk,
                assignment=slug,
                status=status,
                worker=worker,
                seconds=(now - began).total_seconds(),
                heartbeat_seconds=beat_seconds,
                stale=beat_seconds is None or beat_seconds > stale_after,
            )
        )
    stages.sort(key=lambda s: -s.seconds)
    return stages


def recent_infrastructure_errors(user, limit: int = RECENT_ERRORS) -> list[Submission]:
    """The latest submissions that ended `error/infrastructure`, of the courses `user` teaches."""
    errors = Submission.objects.filter(
        status=Submission.Status.ERROR, reason=Submission.Reason.INFRASTRUCTURE
    )
    course_ids = instructed_course_ids(user)
    if course_ids is not None:
        errors = errors.filter(Q(assignment__course_id__in=course_ids))
    return list(
        errors.select_related("assignment")
        .only("pk", "message", "finished_at", "assignment__slug", "assignment__title")
        .order_by("-finished_at", "-pk")[:limit]
    )


def queue_of_stage(status: str) -> str:
    """The queue a running stage's task came from."""
    return STAGE_TASK[status][1]
