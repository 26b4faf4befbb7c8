"""Operational failures with real processes: the broker down at upload, a full jobs disk.

Each test starts what it breaks itself (a closed port for a broker that is down, a small tmpfs
for the jobs folder), so the shared PostgreSQL and Redis of a CI run are never disturbed.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from assignments.dispatch import enqueue_submission
from assignments.models import Enrollment, EpochMetric, Submission
from tests.workers import test_e2e_pipeline as e2e
from tests.workers.conftest import (
    FIXTURE_MODELS,
    make_assignment,
    make_submission,
    queued_tasks,
)
from tests.workers.test_e2e_pipeline import SLOW_MODULE, SLOW_RULES, ended, wait_for

Status = Submission.Status

# Epochs of several seconds each here: a shutdown lands in the middle of the training.
SLOWER_MODULE = SLOW_MODULE.replace('"batch_size": 4', '"batch_size": 1')

# Real worker processes, as in the end-to-end tests.
workers = e2e.workers
sandbox_backend = e2e.sandbox_backend


def closed_port() -> int:
    """A loopback port nothing listens on: a broker that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def point_broker_at(url: str) -> None:
    from tests.workers.conftest import _reset_connection_pools
    from workers.celery import app

    app.conf.broker_url = url
    _reset_connection_pools(app)


def upload(student: Any, slug: str, name: str, data: bytes) -> Any:
    token = Token.objects.get_or_create(user=student)[0].key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    handle = io.BytesIO(data)
    handle.name = name
    return client.post(
        f"/api/v1/assignments/{slug}/submissions/", {"file": handle}, format="multipart"
    )


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.bwrap
@pytest.mark.tf
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(600)
def test_an_upload_while_the_broker_is_down_is_stored_and_sent_once_it_is_back(
    redis_broker, redis_url, student, grading_settings, workers, monkeypatch
):
    assignment = make_assignment()
    Enrollment.objects.create(course=assignment.course, user=student)
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{closed_port()}/0")
    point_broker_at(f"redis://127.0.0.1:{closed_port()}/0")

    began = time.monotonic()
    response = upload(
        student, assignment.slug, "net.json", (FIXTURE_MODELS / "smoke_separable.json").read_bytes()
    )
    elapsed = time.monotonic() - began

    print(f"upload with the broker down: HTTP {response.status_code} after {elapsed:.1f} s")
    submission = Submission.objects.get()
    assert submission.status == Status.QUEUED
    assert response.status_code == 201, response.content
    assert response.json()["id"] == submission.pk
    assert elapsed < 10

    # The broker is back: the reaper re-sends the waiting submission's build; graded once.
    monkeypatch.setenv("CELERY_BROKER_URL", redis_url)
    point_broker_at(redis_url)
    assert queued_tasks(redis_broker, "preflight") == []
    workers.start()
    wait_for(ended(submission), timeout=300, workers=workers, what="the re-sent grading")
    assert (submission.status, submission.attempts) == (Status.FINISHED, 0), submission.message
    assert submission.result.passed is True
    logs = workers.logs()
    assert "Re-sending the next task of waiting submission" in logs
    finished_at = submission.finished_at
    time.sleep(4)  # the reaper keeps running: nothing is graded a second time
    submission.refresh_from_db()
    assert (submission.status, submission.finished_at) == (Status.FINISHED, finished_at)


@pytest.fixture
def small_jobs_disk(grading_settings: Any) -> Iterator[Path]:
    """GRADER_JOBS_DIR on its own 64 MiB tmpfs, which a test can fill up (needs root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs as the jobs folder needs root")
    jobs = Path(grading_settings.GRADER_JOBS_DIR)
    jobs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(jobs)], check=True)
    try:
        yield jobs
    finally:
        subprocess.run(["umount", "-l", str(jobs)], check=False)


def fill_up(disk: Path) -> Path:
    """Write zeros to a file on `disk` until the filesystem has no space left."""
    filler = disk / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            # Whatever the buffer still holds cannot be written either: drop it.
            handle.truncate(handle.tell() if handle.tell() else 0)
    return filler


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.bwrap
@pytest.mark.tf
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(600)
def test_a_full_jobs_disk_mid_training_is_an_infrastructure_error_retried_from_the_checkpoint(
    small_jobs_disk, workers, student
):
    submission = make_submission(
        make_assignment(rules_yaml=SLOW_RULES), student, source=SLOW_MODULE
    )
    workers.start()
    with transaction.atomic():
        enqueue_submission(submission.pk)
    wait_for(
        lambda: EpochMetric.objects.filter(submission=submission).exists(),
        timeout=300,
        workers=workers,
        what="epoch 1",
        interval=0.2,
    )

    filler = fill_up(small_jobs_disk)
    began = time.monotonic()

    def handed_back_or_ended() -> bool:
        submission.refresh_from_db()
        return submission.status in Submission.TERMINAL_STATUSES or (
            submission.status == Status.CHECKING and submission.worker == ""
        )

    wait_for(handed_back_or_ended, timeout=120, workers=workers, what="the training to stop")
    print(
        f"disk full: {submission.status}/{submission.reason or '-'} after "
        f"{time.monotonic() - began:.1f} s: {submission.message}"
    )
    assert submission.status == Status.CHECKING, (
        f"{submission.status}/{submission.reason}: {submission.message}\n{workers.logs()}"
    )
    filler.unlink()  # the operator freed space: the retry resumes from the checkpoint

    wait_for(ended(submission), timeout=300, workers=workers, what="the retried training")
    assert submission.status == Status.FINISHED, f"{submission.message}\n{workers.logs()}"
    epochs = list(EpochMetric.objects.filter(submission=submission).values_list("epoch", flat=True))
    assert sorted(epochs) == [1, 2, 3, 4, 5]
    assert "Training resumed from the checkpoint of epoch" in submission.log
    log = (workers.log_dir / "worker0.log").read_text(errors="replace")
    assert "disk of the jobs folder was full" in log and "retry in 15 s" in log
    assert submission.attempts == 0  # handed back and retried, not re-queued by the reaper


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (pool processes, sandboxes: bwrap starts its own session)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children: list[str] = []
            children = (
                (task / "children").read_text().split() if (task / "children").exists() else []
            )
            for child in map(int, children):
                found.append(child)
                pending.append(child)
    return found


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.bwrap
@pytest.mark.tf
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(600)
@pytest.mark.parametrize("stopped_by", ["docker", "systemd"])
def test_a_cold_shutdown_mid_training_is_resumed_once_by_the_next_worker(
    workers, student, stopped_by
):
    """`docker stop` signals the worker only; systemd (KillMode=control-group) every process.

    Both send SIGTERM (warm shutdown: wait for running tasks), then, after their timeout, a
    signal that cannot wait: SIGQUIT here (Celery's cold shutdown), then SIGKILL.
    """
    submission = make_submission(
        make_assignment(rules_yaml=SLOW_RULES), student, source=SLOWER_MODULE
    )
    first = workers.start()
    with transaction.atomic():
        enqueue_submission(submission.pk)
    wait_for(
        lambda: EpochMetric.objects.filter(submission=submission).count() >= 2,
        timeout=300,
        workers=workers,
        what="epoch 2",
        interval=0.1,
    )
    targets = [first.pid] + (descendants(first.pid) if stopped_by == "systemd" else [])
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    time.sleep(1)  # the stop timeout (seconds, not the minutes of docker's or systemd's)
    submission.refresh_from_db()
    after_term = (submission.status, submission.reason, submission.message)
    with contextlib.suppress(ProcessLookupError):
        os.kill(first.pid, signal.SIGQUIT)
    try:
        first.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=20)
    seconds = [e.seconds for e in EpochMetric.objects.filter(submission=submission)]
    print(f"{stopped_by}: after SIGTERM {after_term}; epochs before the exit: {seconds} s")
    assert after_term[0] == Status.TRAINING, f"{after_term}\n{workers.logs()}"
    killed_at_epochs = len(seconds)
    assert killed_at_epochs < 5

    began = time.monotonic()
    workers.start()
    wait_for(ended(submission), timeout=360, workers=workers, what="the resumed grading")
    print(f"{stopped_by}: ended {time.monotonic() - began:.1f} s after the new worker started")
    assert submission.status == Status.FINISHED, f"{submission.message}\n{workers.logs()}"
    assert submission.attempts == 1
    epochs = list(EpochMetric.objects.filter(submission=submission).values_list("epoch", flat=True))
    assert sorted(epochs) == [1, 2, 3, 4, 5]
    assert submission.result.epochs_run == 5
    resumed_from = int(submission.log.split("checkpoint of epoch ")[1].split(".")[0])
    assert 1 <= resumed_from <= killed_at_epochs
    finished_at = submission.finished_at
    time.sleep(5)  # the reaper keeps running: nothing is graded a second time
    submission.refresh_from_db()
    assert (submission.status, submission.finished_at) == (Status.FINISHED, finished_at)


RESTART_POSTGRES = os.environ.get("TEST_POSTGRES_RESTART_COMMAND", "")


def tolerant(condition: Callable[[], Any]) -> Callable[[], Any]:
    """`condition`, reconnecting when the database went away under the test's own connection."""

    def check() -> Any:
        try:
            return condition()
        except OperationalError:
            connection.close()
            return False

    return check


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.bwrap
@pytest.mark.tf
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(600)
@pytest.mark.skipif(
    not RESTART_POSTGRES,
    reason="TEST_POSTGRES_RESTART_COMMAND names no restartable PostgreSQL of this test run "
    "(e.g. `pg_ctlcluster 15 qa stop && sleep 5 && pg_ctlcluster 15 qa start`); the shared "
    "server of CI is never restarted",
)
def test_a_database_restart_mid_training_ends_the_grading_exactly_once(workers, student):
    submission = make_submission(
        make_assignment(rules_yaml=SLOW_RULES), student, source=SLOWER_MODULE
    )
    workers.start()
    with transaction.atomic():
        enqueue_submission(submission.pk)
    wait_for(
        lambda: EpochMetric.objects.filter(submission=submission).count() >= 2,
        timeout=300,
        workers=workers,
        what="epoch 2",
        interval=0.1,
    )

    began = time.monotonic()
    subprocess.run(RESTART_POSTGRES, shell=True, check=True, timeout=120)
    print(f"database back after {time.monotonic() - began:.1f} s")
    connection.close()

    wait_for(tolerant(ended(submission)), timeout=360, workers=workers, what="the grading")
    print(
        f"ended {time.monotonic() - began:.1f} s after the restart began: "
        f"{submission.status}/{submission.reason or '-'}, attempts {submission.attempts}"
    )
    assert submission.status == Status.FINISHED, f"{submission.message}\n{workers.logs()}"
    epochs = list(EpochMetric.objects.filter(submission=submission).values_list("epoch", flat=True))
    assert sorted(epochs) == [1, 2, 3, 4, 5]
    assert submission.result.epochs_run == 5
    finished_at = submission.finished_at
    time.sleep(5)  # the reaper keeps running: nothing is graded a second time
    submission.refresh_from_db()
    assert (submission.status, submission.finished_at) == (Status.FINISHED, finished_at)


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.bwrap
@pytest.mark.tf
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(600)
def test_a_warm_shutdown_waits_for_the_running_training_and_a_cold_one_hands_it_back_at_once(
    workers, student
):
    """SIGTERM: the worker finishes the training it runs, then exits (the next stage waits in
    the queue). SIGQUIT: it exits at once and the next worker resumes the training from its
    checkpoint through the redelivered message, long before the reaper would."""
    workers.env.update({"GRADER_HEARTBEAT_TIMEOUT": "600", "GRADER_QUEUE_TIMEOUT": "600"})
    assignment = make_assignment(rules_yaml=SLOW_RULES)
    first_submission = make_submission(assignment, student, source=SLOWER_MODULE)
    first = workers.start()
    with transaction.atomic():
        enqueue_submission(first_submission.pk)
    wait_for(
        lambda: EpochMetric.objects.filter(submission=first_submission).exists(),
        timeout=300,
        workers=workers,
        what="epoch 1",
        interval=0.1,
    )
    began = time.monotonic()
    os.kill(first.pid, signal.SIGTERM)
    first.wait(timeout=300)
    first_submission.refresh_from_db()
    print(
        f"warm shutdown took {time.monotonic() - began:.1f} s; "
        f"{first_submission.status} worker={first_submission.worker!r}"
    )
    assert (first_submission.status, first_submission.worker) == (Status.TRAINING, "")
    assert first_submission.result.epochs_run == 5  # trained to the end, evaluation pending

    second = workers.start()  # evaluates the first; then the cold shutdown of the next one
    wait_for(ended(first_submission), timeout=300, workers=workers, what="the first grading")
    assert first_submission.status == Status.FINISHED
    submission = make_submission(
        assignment, student, source=SLOWER_MODULE.replace("0.002", "0.003"), name="other.py"
    )
    with transaction.atomic():
        enqueue_submission(submission.pk)
    wait_for(
        lambda: EpochMetric.objects.filter(submission=submission).count() >= 2,
        timeout=300,
        workers=workers,
        what="epoch 2",
        interval=0.1,
    )
    began = time.monotonic()
    os.kill(second.pid, signal.SIGQUIT)
    second.wait(timeout=60)
    print(f"cold shutdown took {time.monotonic() - began:.1f} s")
    workers.start()
    wait_for(ended(submission), timeout=300, workers=workers, what="the resumed grading")
    print(f"resumed and ended {time.monotonic() - began:.1f} s after the cold shutdown")
    assert submission.status == Status.FINISHED, f"{submission.message}\n{workers.logs()}"
    assert submission.attempts == 1  # the redelivered task's takeover (the reaper waits 600 s)
    assert "Training resumed from the checkpoint of epoch" in submission.log


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.bwrap
@pytest.mark.tf
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(600)
def test_a_worker_killed_outright_takes_its_training_back_when_it_restarts(workers, student):
    """SIGKILL (a stop timeout ran out, the host rebooted) leaves the stage claimed and its
    message unacknowledged; the worker restarted under the same node name re-sends it at once,
    long before the reaper's heartbeat timeout (600 s here)."""
    workers.env.update({"GRADER_HEARTBEAT_TIMEOUT": "600", "GRADER_QUEUE_TIMEOUT": "600"})
    submission = make_submission(
        make_assignment(rules_yaml=SLOW_RULES), student, source=SLOWER_MODULE
    )
    node = f"restarted@{socket.gethostname()}"
    first = workers.start(node)
    with transaction.atomic():
        enqueue_submission(submission.pk)
    wait_for(
        lambda: EpochMetric.objects.filter(submission=submission).count() >= 2,
        timeout=300,
        workers=workers,
        what="epoch 2",
        interval=0.1,
    )
    workers.kill(first)  # SIGKILL to every process of the worker
    submission.refresh_from_db()
    assert submission.status == Status.TRAINING and submission.worker.startswith(f"{node}#")
    killed_at_epochs = EpochMetric.objects.filter(submission=submission).count()

    began = time.monotonic()
    workers.start(node)
    wait_for(ended(submission), timeout=300, workers=workers, what="the resumed grading")
    print(f"ended {time.monotonic() - began:.1f} s after the worker restarted")
    assert submission.status == Status.FINISHED, f"{submission.message}\n{workers.logs()}"
    assert submission.attempts == 1
    assert "re-sent the stages an earlier run of this worker left" in workers.logs(tail=None)
    epochs = list(EpochMetric.objects.filter(submission=submission).values_list("epoch", flat=True))
    assert sorted(epochs) == [1, 2, 3, 4, 5]
    resumed_from = int(submission.log.split("checkpoint of epoch ")[1].split(".")[0])
    assert 1 <= resumed_from <= killed_at_epochs
