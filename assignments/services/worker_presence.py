"""Workers report themselves: which queues they consume, their sandbox and GPUs, when they
were last alive. The queue-health page reads it (`selectors.queue_health`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from assignments.models import WorkerPresence


def record_worker(
    *,
    node: str,
    queues: Sequence[str],
    sandbox: str,
    gpus: Sequence[str],
    started_at: dt.datetime,
    concurrency: int | None = None,
    now: dt.datetime | None = None,
) -> WorkerPresence:
    """Note that worker `node` is alive now (idempotent: one row per node name).

    Args:
        node: Celery's node name (`-n`), unique among running workers.
        queues: the queues it consumes.
        sandbox: its sandbox backend (`bwrap`, `docker`).
        gpus: the GPU ids its pool processes own (empty on a CPU worker).
        started_at: when this run of the node started (a restart replaces it).
        concurrency: its pool size.
    """
    now = now or timezone.now()
    with transaction.atomic():
        presence, _ = WorkerPresence.objects.update_or_create(
            node=node,
            defaults={
                "queues": sorted(queues),
                "sandbox": sandbox,
                "gpus": list(gpus),
                "concurrency": concurrency,
                "started_at": started_at,
                "last_seen": now,
                "stopped_at": None,
            },
        )
    return presence


def record_stopped(*, node: str, now: dt.datetime | None = None) -> bool:
    """Note that worker `node` shut down cleanly. False if it never reported itself."""
    updated = WorkerPresence.objects.filter(node=node).update(stopped_at=now or timezone.now())
    return updated == 1
