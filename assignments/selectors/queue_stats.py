"""Queue lengths and running stages for the instructors' dashboard (a read; the writes are in
`services.grading`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models.functions import Coalesce
from django.utils import timezone

from assignments.models import Submission
from assignments.services.grading import STAGE_TASK, grading_setting, next_stage


def queue_stats() -> dict[str, Any]:
    """Queue lengths and running stages, for the instructors' dashboard.

    Returns:
        `{"queues": {queue: {"waiting", "running"}}, "gpus": {worker node: running},
        "stalled": n, "oldest_waiting": {"submission_id", "status", "since", "seconds"} | None}`
        where `gpus` counts the stages running on each GPU worker (its node name) and `stalled`
        the running stages whose heartbeat is older than `GRADER_HEARTBEAT_TIMEOUT`.
    """
    now = timezone.now()
    queues: dict[str, dict[str, int]] = {
        name: {"waiting": 0, "running": 0} for name in ("preflight", "gpu")
    }
    gpus: dict[str, int] = {}
    stalled = 0
    stale_before = now - timedelta(seconds=grading_setting("GRADER_HEARTBEAT_TIMEOUT"))
    oldest: dict[str, Any] | None = None
    rows = (
        Submission.objects.filter(status__in=Submission.ACTIVE_STATUSES)
        .annotate(touched=Coalesce("heartbeat_at", "queued_at", "created_at"))
        .values_list("pk", "status", "worker", "heartbeat_at", "touched", "assignment__mode")
        .order_by()
    )
    for pk, status, worker, beat, touched, mode in rows.iterator():
        if worker:
            queue = STAGE_TASK[status][1]
            queues[queue]["running"] += 1
            if queue == "gpu":
                node = worker.split("#", 1)[0]
                gpus[node] = gpus.get(node, 0) + 1
            if beat is None or beat < stale_before:
                stalled += 1
            continue
        queue = STAGE_TASK[next_stage(status=status, mode=mode)][1]
        queues[queue]["waiting"] += 1
        if oldest is None or touched < oldest["since"]:
            oldest = {"submission_id": pk, "status": status, "since": touched}
    if oldest is not None:
        oldest["seconds"] = (now - oldest["since"]).total_seconds()
    return {"queues": queues, "gpus": gpus, "stalled": stalled, "oldest_waiting": oldest}
