"""Hands submissions to the workers, by task name, once the database row is committed.

`assignments` never imports `workers`: it only names the task. The worker side owns the task.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction

BUILD_TASK = "workers.build_submission"


def enqueue_submission(submission_id: int) -> None:
    """Queue the first grading stage after the current transaction commits."""
    transaction.on_commit(
        lambda: current_app.send_task(BUILD_TASK, args=[submission_id], queue="preflight")
    )
