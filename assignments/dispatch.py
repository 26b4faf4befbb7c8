"""Hands submissions to the workers, by task name, once the database row is committed.

`assignments` never imports `workers`: it only names the task. The worker side owns the task.

The database row is the source of truth and the message only a wake-up call: when the broker
cannot take it (Redis down or restarting), the send is logged and dropped instead of failing
the request or stage that already committed, and the reaper re-sends the task of every waiting
submission untouched for `GRADER_QUEUE_TIMEOUT` seconds once the broker is back.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction

from assignments.stage_tasks import STAGE_TASKS

logger = logging.getLogger(__name__)

BUILD_TASK, BUILD_QUEUE = STAGE_TASKS["building"]


def send_after_commit(task_name: str, *, submission_id: int, **options: Any) -> None:
    """Send `task_name` for a submission once the current transaction commits.

    A broker failure is logged, never raised: the committed row already says what is waiting.
    """

    def send() -> None:
        try:
            current_app.send_task(task_name, args=[submission_id], **options)
        except Exception:
            logger.warning(
                "Could not send %s for submission %s (broker unavailable?); the reaper "
                "re-sends it once the broker is back",
                task_name,
                submission_id,
                exc_info=True,
            )

    transaction.on_commit(send)


def enqueue_submission(submission_id: int) -> None:
    """Queue the first grading stage after the current transaction commits."""
    send_after_commit(BUILD_TASK, submission_id=submission_id, queue=BUILD_QUEUE)
