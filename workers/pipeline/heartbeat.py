"""A running stage's heartbeat: its claim kept alive, its loss noticed within seconds.

While a stage's sandbox runs, a thread refreshes the submission's heartbeat (the reaper re-sends
a stage whose heartbeat went stale) and, in between, checks that this worker still owns the
stage; when it does not (cancelled, regraded, re-queued), the sandbox is killed at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

from assignments.selectors import stage_rows
from assignments.services import grading

logger = logging.getLogger("workers.pipeline.stages")  # the name operators already filter on


class Heartbeat:
    """Keeps a running stage's claim alive and notices, within seconds, when it is lost.

    A thread refreshes the heartbeat every `interval` seconds and, in between, reads every
    `check_interval` seconds whether this worker still owns the stage. Once it does not (the
    submission was cancelled, regraded, or handed to another worker by the reaper), `lost`
    becomes True and `lost_event` is set: passed to the sandbox as its `cancel` event, it kills
    the job at once, so an abandoned training stops holding its GPU.
    """

    def __init__(
        self,
        *,
        submission_id: int,
        worker: str,
        interval: float,
        check_interval: float | None = None,
    ) -> None:
        self.submission_id = submission_id
        self.worker = worker
        self.interval = interval
        self.check_interval = min(interval, check_interval or interval)
        self.lost_event = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grader-heartbeat", daemon=True)

    @property
    def lost(self) -> bool:
        """True once this worker no longer owns the stage."""
        return self.lost_event.is_set()

    def _still_owned(self, *, refresh: bool) -> bool:
        if refresh:
            return grading.heartbeat(submission_id=self.submission_id, worker=self.worker)
        # A read between heartbeats: cheap (primary key), and writes nothing.
        return stage_rows.still_owns(self.submission_id, self.worker)

    def _run(self) -> None:
        next_beat = time.monotonic() + self.interval
        try:
            while not self._stop.wait(self.check_interval):
                refresh = time.monotonic() >= next_beat - 0.01
                try:
                    owned = self._still_owned(refresh=refresh)
                except DatabaseError:
                    # The database may be away for a moment: keep the job running. A worker
                    # cut off for good is re-queued by the reaper, and notices when it is back.
                    logger.warning(
                        "Heartbeat of submission %s failed", self.submission_id, exc_info=True
                    )
                    connection.close()
                    continue
                if refresh:
                    next_beat = time.monotonic() + self.interval
                if not owned:
                    logger.warning(
                        "Submission %s: %s no longer owns the stage; stopping its sandbox",
                        self.submission_id,
                        self.worker,
                    )
                    self.lost_event.set()
                    return
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@contextmanager
def heartbeat_while_running(submission_id: int, worker: str) -> Iterator[Heartbeat]:
    """Keep the heartbeat fresh while a sandbox runs, and notice a lost claim within seconds.

    `GRADER_HEARTBEAT_INTERVAL` (30 s) between heartbeats; `GRADER_CANCEL_CHECK_SECONDS` (2 s)
    between ownership checks, so a cancel stops the sandbox within about that long.
    """
    interval = grading.grading_setting("GRADER_HEARTBEAT_INTERVAL")
    check = grading.grading_setting("GRADER_CANCEL_CHECK_SECONDS")
    with Heartbeat(
        submission_id=submission_id, worker=worker, interval=interval, check_interval=check
    ) as beat:
        yield beat
    # The stage's own connection sat idle while the sandbox ran (up to hours): a database that
    # restarted meanwhile left it broken. Have it checked (and replaced) before the stage's
    # result is written, instead of failing that write once and training again on a retry.
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()
