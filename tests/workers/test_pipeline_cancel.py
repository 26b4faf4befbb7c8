"""A stage that loses its submission while its sandbox runs: the sandbox dies within seconds.

`execute_build` runs in a thread, as in a worker process, with a real sandbox backend and a
student module that starts a child and sleeps. The submission is then cancelled through the
service (as the site does) or taken back by the reaper, and the host is watched until nothing
of the sandbox is left.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from assignments.models import AuditEntry, Submission
from assignments.services import grading
from tests.workers.conftest import make_assignment, make_submission, queued_tasks
from tests.workers.sandbox_probe import seconds_until_gone, wait_for_sandbox
from workers.pipeline import stages

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
]

Status = Submission.Status

# `build_model` never returns: a child process and the runner itself sleep for an hour.
SLEEPING_MODULE = """\
import subprocess, sys, time


def build_model(input_shape, num_classes):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", "{marker}"])
    time.sleep(3600)
"""

# The default ownership check interval, plus killing and removing the sandbox.
STOP_LIMIT_SECONDS = {"bwrap": settings.GRADER_CANCEL_CHECK_SECONDS + 3.0}
STOP_LIMIT_SECONDS["docker"] = settings.GRADER_CANCEL_CHECK_SECONDS + 7.0


@pytest.fixture(
    params=[
        pytest.param("bwrap", marks=pytest.mark.bwrap),
        pytest.param("docker", marks=pytest.mark.docker),
    ]
)
def backend(request: pytest.FixtureRequest) -> Any:
    """A real sandbox backend (each in turn)."""
    from workers.sandbox import get_sandbox

    request.getfixturevalue(f"{request.param}_available")
    return get_sandbox(request.param)


class RunningBuild:
    """`execute_build` of one submission in a thread, as a worker process runs it."""

    def __init__(self, submission: Submission, backend: Any, worker: str) -> None:
        self.submission = submission
        self.outcome: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(backend, worker), daemon=True)
        self.thread.start()

    def _run(self, backend: Any, worker: str) -> None:
        try:
            self.outcome["result"] = stages.execute_build(
                self.submission.pk, worker=worker, sandbox=backend
            )
        except BaseException as exc:  # reported by `result()`
            self.outcome["error"] = exc
        finally:
            connection.close()

    def result(self, timeout: float = 30.0) -> str:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stage did not return"
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["result"]

    @property
    def job_root(self) -> Path:
        self.submission.refresh_from_db()
        return stages.jobs_root() / stages.grading_key(self.submission)


def start_sleeping_build(student: Any, backend: Any, worker: str) -> RunningBuild:
    marker = f"sleeping-student-{uuid.uuid4().hex}"
    submission = make_submission(
        make_assignment(), student, source=SLEEPING_MODULE.format(marker=marker)
    )
    return RunningBuild(submission, backend, worker)


def test_cancelling_a_running_stage_kills_its_sandbox_and_keeps_the_cancel(
    backend, student, grading_settings, redis_broker
):
    build = start_sleeping_build(student, backend, "cpu@host#1")
    job_root = build.job_root
    # The bwrap tree: outer bwrap, its pid 1, the runner and the student's child at least.
    probe = wait_for_sandbox(backend.name, job_root, timeout=120, min_processes=4)
    time.sleep(0.5)  # let the stage's first ownership checks pass while it is still owned
    assert probe.alive()

    began = time.monotonic()
    cancelled = grading.cancel_submission(submission_id=build.submission.pk, actor=student)
    elapsed = seconds_until_gone(probe, since=began, timeout=30)

    print(f"{backend.name}: sandbox gone {elapsed:.2f} s after the cancel")
    assert elapsed < STOP_LIMIT_SECONDS[backend.name]
    assert build.result() == stages.ABORTED
    submission = Submission.objects.get(pk=build.submission.pk)
    assert (submission.status, submission.reason, submission.worker) == (Status.CANCELLED, "", "")
    assert submission.message == cancelled.message == "Cancelled by student (the student)."
    assert submission.finished_at == cancelled.finished_at
    assert submission.log == ""  # the killed build reported nothing
    assert AuditEntry.objects.filter(submission=submission, action="cancel").count() == 1
    assert not job_root.exists()  # nothing will resume from a cancelled grading's folders
    assert queued_tasks(redis_broker, "preflight") == []  # no retry, no next stage


def test_a_stage_the_reaper_took_back_stops_its_sandbox_and_leaves_the_folders(
    backend, student, grading_settings, redis_broker
):
    build = start_sleeping_build(student, backend, "cpu@host#1")
    job_root = build.job_root
    probe = wait_for_sandbox(backend.name, job_root, timeout=120, min_processes=4)
    # The reaper's view: this worker's heartbeat went stale (as if it had been cut off).
    Submission.objects.filter(pk=build.submission.pk).update(
        heartbeat_at=timezone.now() - timedelta(hours=1)
    )

    began = time.monotonic()
    assert grading.requeue_stale(older_than_seconds=60) == [build.submission.pk]
    elapsed = seconds_until_gone(probe, since=began, timeout=30)

    print(f"{backend.name}: sandbox gone {elapsed:.2f} s after the reaper's re-queue")
    assert elapsed < STOP_LIMIT_SECONDS[backend.name]
    assert build.result() == stages.ABORTED
    submission = Submission.objects.get(pk=build.submission.pk)
    # Handed back for another worker: nothing of the stopped attempt was written.
    assert (submission.status, submission.worker, submission.attempts) == (Status.QUEUED, "", 1)
    assert submission.log == ""
    assert job_root.is_dir()  # the next attempt's (training would resume from checkpoints)
    assert [name for name, _, _ in queued_tasks(redis_broker, "preflight")] == [
        "workers.build_submission"  # re-sent by the reaper only
    ]

    # The re-sent stage runs on another worker as usual, and can itself be cancelled.
    again = RunningBuild(submission, backend, "cpu@host#2")
    probe = wait_for_sandbox(backend.name, job_root, timeout=120, min_processes=4)
    grading.cancel_submission(submission_id=submission.pk, actor=student)
    seconds_until_gone(probe, since=time.monotonic(), timeout=STOP_LIMIT_SECONDS[backend.name])
    assert again.result() == stages.ABORTED


def test_the_ownership_check_reads_between_heartbeats(student, grading_settings, instructor):
    """Checks every `check_interval` write nothing; only heartbeats refresh `heartbeat_at`."""
    submission = make_submission(make_assignment(), student, source="x = 1\n")
    assert grading.claim_stage(
        submission_id=submission.pk,
        from_status=Status.QUEUED,
        to_status=Status.BUILDING,
        worker="w#1",
    )
    claimed_beat = Submission.objects.get(pk=submission.pk).heartbeat_at
    with stages.Heartbeat(
        submission_id=submission.pk, worker="w#1", interval=60, check_interval=0.2
    ) as beat:
        time.sleep(1.0)
        assert Submission.objects.get(pk=submission.pk).heartbeat_at == claimed_beat
        began = time.monotonic()
        grading.cancel_submission(submission_id=submission.pk, actor=instructor)
        assert beat.lost_event.wait(5)
        assert time.monotonic() - began < 1.0
