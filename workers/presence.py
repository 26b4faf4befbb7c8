"""A worker node reports itself every `GRADER_WORKER_PRESENCE_SECONDS` (30 s) while it runs:
its queues, sandbox backend and GPUs, for the instructors' queue-health page.

Started from the main process when the worker is ready (`workers.celery`), in a daemon thread
that only writes one row; a database that is away for a moment costs one report, not the
worker.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


def describe_worker(consumer: Any) -> dict[str, Any]:
    """What a ready worker's consumer says about it: node, queues, concurrency."""
    app = consumer.app
    try:
        queues = sorted(app.amqp.queues.consume_from)
    except (AttributeError, TypeError):
        queues = []
    pool = getattr(getattr(consumer, "controller", None), "concurrency", None)
    return {
        "node": getattr(consumer, "hostname", "") or "",
        "queues": queues,
        "concurrency": pool if isinstance(pool, int) else None,
    }


def gpu_ids() -> list[str]:
    """The GPUs this worker's pool processes own (`GRADER_GPU_IDS` or `GRADER_GPU_DEVICE`)."""
    listed = os.environ.get("GRADER_GPU_IDS", "") or os.environ.get("GRADER_GPU_DEVICE", "")
    return [part.strip() for part in listed.split(",") if part.strip()]


class PresenceReporter(threading.Thread):
    """Reports the worker now, then every `interval` seconds until `stop()`."""

    def __init__(self, *, description: dict[str, Any], started_at: Any, interval: float) -> None:
        super().__init__(name="grader-presence", daemon=True)
        self.description = description
        self.started_at = started_at
        self.interval = interval
        self._stop_event = threading.Event()

    def report(self) -> None:
        from assignments.services.worker_presence import record_worker

        try:
            record_worker(
                node=self.description["node"],
                queues=self.description["queues"],
                sandbox=str(settings.GRADER_SANDBOX),
                gpus=gpu_ids(),
                started_at=self.started_at,
                concurrency=self.description.get("concurrency"),
            )
        except DatabaseError:
            logger.warning("Could not report worker %s", self.description["node"], exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def run(self) -> None:
        self.report()
        while not self._stop_event.wait(self.interval):
            self.report()

    def stop(self) -> None:
        self._stop_event.set()


def interval_seconds() -> float:
    """`GRADER_WORKER_PRESENCE_SECONDS`, declared in `config/settings/base.py`."""
    return float(settings.GRADER_WORKER_PRESENCE_SECONDS)
