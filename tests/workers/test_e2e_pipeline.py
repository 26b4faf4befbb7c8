"""End to end: a real Celery worker process, Redis as broker, PostgreSQL, the bwrap sandbox.

The worker is `celery -A workers worker -B -Q preflight,gpu,maintenance --concurrency 1 --pool
prefork`, pointed at this test run's database (pytest-django's test database) and at the test
Redis database. Models are tiny and trainings short (the `smoke` preset on the synthetic
dataset); short heartbeat and queue timeouts let the reaper act within seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction

from assignments.dispatch import enqueue_submission
from assignments.models import EpochMetric, Result, Submission
from assignments.services.grading import cancel_submission
from tests.workers.conftest import (
    FIXTURE_MODELS,
    PLAIN_CONV_MODULE,
    SMOKE_MODULE,
    make_assignment,
    make_submission,
    queued_tasks,
    smoke_rules_yaml,
)
from tests.workers.sandbox_probe import seconds_until_gone, wait_for_sandbox

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.services,
    pytest.mark.bwrap,
    pytest.mark.tf,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(600),
]

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")
Status = Submission.Status

# A module whose epochs take a few seconds each (small batches), so a worker can be killed
# between epochs.
SLOW_MODULE = SMOKE_MODULE.replace(
    'return {"epochs": 3, "batch_size": 32, "learning_rate": 0.01}',
    'return {"epochs": 5, "batch_size": 4, "learning_rate": 0.002}',
)
# The smoke preset's training budget refuses batches that small: these tests lift it.
SLOW_RULES = smoke_rules_yaml(min_batch_size=1)


def database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test database)."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        from tests.conftest import service_missing

        service_missing(f"PostgreSQL as the test database (DATABASE_URL; got {connection.vendor})")
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    return f"postgres://{user}{password}@{host}/{db['NAME']}"


class Workers:
    """Starts worker processes (each in its own session) and kills them all at teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, node: str | None = None) -> subprocess.Popen[bytes]:
        """Start a worker named `node` (Celery's `-n`), by default `e2e<index>@<host>`."""
        index = len(self.processes)
        log = (self.log_dir / f"worker{index}.log").open("wb")
        process = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "workers",
                "worker",
                "-B",
                "-s",
                str(self.log_dir / f"beat{index}"),
                "-Q",
                "preflight,gpu,maintenance",
                "--concurrency",
                "1",
                "--pool",
                "prefork",
                "--loglevel",
                "INFO",
                "-n",
                node or f"e2e{index}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches every process
        )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool processes at once, like a machine dying."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def logs(self, tail: int | None = 6000) -> str:
        """Every worker's log (the last `tail` characters of each: failure messages stay short;
        `tail=None` for all of it, for assertions on what a log says)."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-tail if tail else 0 :]}"
            for path in sorted(self.log_dir.glob("worker*.log"))
        )

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def sandbox_backend(request: pytest.FixtureRequest) -> str:
    """The sandbox the worker uses: bwrap, unless a test asks for docker (indirectly)."""
    name = getattr(request, "param", "bwrap")
    request.getfixturevalue("docker_available" if name == "docker" else "bwrap_available")
    return name


@pytest.fixture
def workers(
    redis_broker, redis_url, grading_settings, sandbox_backend, tmp_path
) -> Iterator[Workers]:
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"CI_SECRET"}},
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "GRADER_ENV_FILE": "",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": redis_url,
        "GRADER_VAR_DIR": str(tmp_path / "var"),
        "GRADER_MEDIA_ROOT": str(grading_settings.MEDIA_ROOT),
        "GRADER_JOBS_DIR": str(grading_settings.GRADER_JOBS_DIR),
        "GRADER_DATA_DIR": str(grading_settings.GRADER_DATA_DIR),
        "GRADER_SANDBOX": sandbox_backend,
        "GRADER_SANDBOX_IMAGE": "local",  # docker: the empty image, this host's Python
        # Seconds, not minutes: the reaper acts while the test waits.
        "GRADER_HEARTBEAT_INTERVAL": "1",
        "GRADER_HEARTBEAT_TIMEOUT": "8",
        "GRADER_QUEUE_TIMEOUT": "6",
        "GRADER_REAPER_INTERVAL": "2",
        "GRADER_MAX_ATTEMPTS": "3",
    }
    pool = Workers(env, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float,
    workers: Workers,
    what: str,
    interval: float = 0.5,
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"Timed out after {timeout:.0f} s waiting for {what}.\n{workers.logs()}")


def ended(submission: Submission) -> Callable[[], bool]:
    def check() -> bool:
        submission.refresh_from_db()
        return submission.status in Submission.TERMINAL_STATUSES

    return check


def submit(submission: Submission) -> None:
    with transaction.atomic():
        enqueue_submission(submission.pk)


@pytest.mark.parametrize(
    "sandbox_backend", ["bwrap", pytest.param("docker", marks=pytest.mark.docker)], indirect=True
)
def test_a_separable_module_is_built_trained_evaluated_and_passes(
    workers, student, grading_settings, sandbox_backend
):
    submission = make_submission(make_assignment(), student, source=SMOKE_MODULE)
    workers.start()
    submit(submission)

    wait_for(ended(submission), timeout=300, workers=workers, what="the grading to end")

    assert (submission.status, submission.reason) == (Status.FINISHED, ""), (
        f"{submission.message}\n{submission.log[-3000:]}\n{workers.logs()}"
    )
    result = Result.objects.get(submission=submission)
    epochs = list(EpochMetric.objects.filter(submission=submission).order_by("epoch"))
    assert result.passed is True and result.score == 100.0
    assert [e.epoch for e in epochs] == [1, 2, 3]  # the module's declared training config
    assert result.epochs_run == 3
    assert max(e.val_accuracy for e in epochs) >= 0.6  # the preset's min_val_accuracy
    assert 0.0 <= result.accuracy <= 1.0
    assert len(result.per_class_accuracy) == 4
    assert sum(map(sum, result.confusion_matrix)) > 0
    for stamp in ("building_at", "checking_at", "training_at", "evaluating_at", "finished_at"):
        assert getattr(submission, stamp) is not None, stamp
    assert submission.building_at < submission.training_at < submission.finished_at
    assert submission.attempts == 0
    # Job folders (checkpoints, weights) are removed once the grading ended.
    assert not (Path(grading_settings.GRADER_JOBS_DIR) / str(submission.pk)).exists()


def test_a_model_breaking_a_rule_fails_at_check_and_never_trains(workers, student):
    submission = make_submission(make_assignment(), student, source=PLAIN_CONV_MODULE)
    workers.start()
    submit(submission)

    wait_for(ended(submission), timeout=240, workers=workers, what="the grading to end")

    assert (submission.status, submission.reason) == (Status.FAILED, "rules"), submission.message
    failed = [r["id"] for r in submission.result.rules if r["passed"] is False]
    assert "separable_conv_used" in failed
    assert "separable" in submission.message
    assert submission.training_at is None
    assert not EpochMetric.objects.filter(submission=submission).exists()


def test_a_worker_killed_mid_training_is_resumed_from_its_checkpoint_once(workers, student):
    submission = make_submission(
        make_assignment(rules_yaml=SLOW_RULES), student, source=SLOW_MODULE
    )
    first = workers.start()
    submit(submission)

    def epochs_recorded() -> int:
        return EpochMetric.objects.filter(submission=submission).count()

    # Epoch 2's progress line comes after epoch 1's checkpoint was written.
    wait_for(
        lambda: epochs_recorded() >= 2, timeout=300, workers=workers, what="epoch 2", interval=0.1
    )
    workers.kill(first)
    submission.refresh_from_db()
    killed_at_epochs = epochs_recorded()
    assert submission.status == Status.TRAINING and killed_at_epochs < 5

    workers.start()
    wait_for(ended(submission), timeout=360, workers=workers, what="the resumed grading")

    assert submission.status == Status.FINISHED, f"{submission.message}\n{workers.logs()}"
    assert submission.attempts == 1  # one re-sent training, by the reaper
    epochs = list(EpochMetric.objects.filter(submission=submission).values_list("epoch", flat=True))
    assert sorted(epochs) == [1, 2, 3, 4, 5]
    assert submission.result.epochs_run == 5
    assert "Training resumed from the checkpoint of epoch" in submission.log
    resumed_from = int(submission.log.split("checkpoint of epoch ")[1].split(".")[0])
    assert 1 <= resumed_from <= killed_at_epochs
    finished_at = submission.finished_at
    time.sleep(5)  # the reaper keeps running: nothing is graded a second time
    submission.refresh_from_db()
    assert (submission.status, submission.finished_at) == (Status.FINISHED, finished_at)


def _pool_process_running(workers: Workers, task_name: str) -> int:
    """The pid of the pool process running `task_name`, as the worker itself reports it.

    Asked through Celery's remote control (`inspect active`), since a Docker sandbox is the
    engine's child, not the pool process'.
    """
    # A named destination: the answer comes as soon as that worker replies.
    inspect = [str(CELERY), "-A", "workers", "inspect", "active", "--json", "--timeout", "20"]
    answer = subprocess.run(
        [*inspect, "--destination", f"e2e0@{socket.gethostname()}"],
        cwd=ROOT,
        env=workers.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    replies = json.loads(answer.stdout.strip().splitlines()[-1]) if answer.stdout.strip() else {}
    pids = [
        task["worker_pid"]
        for tasks in replies.values()
        for task in tasks
        if task.get("name") == task_name and task.get("worker_pid")
    ]
    assert len(pids) == 1, f"{task_name} running in {pids}: {answer.stdout}{answer.stderr}"
    return int(pids[0])


@pytest.mark.parametrize(
    "sandbox_backend", ["bwrap", pytest.param("docker", marks=pytest.mark.docker)], indirect=True
)
def test_a_pool_process_killed_mid_training_is_resumed_at_once_by_the_redelivered_task(
    workers, student, grading_settings, sandbox_backend
):
    from workers.pipeline.stages import grading_key

    # The reaper waits far longer than this test: only the redelivery can resume the training.
    workers.env.update({"GRADER_HEARTBEAT_TIMEOUT": "600", "GRADER_QUEUE_TIMEOUT": "600"})
    submission = make_submission(
        make_assignment(rules_yaml=SLOW_RULES), student, source=SLOW_MODULE
    )
    workers.start()
    submit(submission)

    def epochs_recorded() -> int:
        return EpochMetric.objects.filter(submission=submission).count()

    wait_for(
        lambda: epochs_recorded() >= 1, timeout=300, workers=workers, what="epoch 1", interval=0.1
    )
    pool = _pool_process_running(workers, "workers.train_submission")
    wait_for(
        lambda: epochs_recorded() >= 2, timeout=120, workers=workers, what="epoch 2", interval=0.1
    )
    submission.refresh_from_db()
    first_run = submission.worker
    job_root = Path(grading_settings.GRADER_JOBS_DIR) / grading_key(submission)
    probe = wait_for_sandbox(sandbox_backend, job_root, timeout=30)
    os.kill(pool, signal.SIGKILL)  # the pool process only: Celery sees the worker lost
    killed_at_epochs = epochs_recorded()
    assert killed_at_epochs < 5

    wait_for(ended(submission), timeout=240, workers=workers, what="the resumed grading")

    assert submission.status == Status.FINISHED, f"{submission.message}\n{workers.logs()}"
    assert submission.attempts == 1  # the redelivered task's takeover; no reaper re-send
    log = (workers.log_dir / "worker0.log").read_text(errors="replace")
    assert "taken over by e2e0@" in log and first_run.split("#")[1].split(".")[0] in log
    if sandbox_backend == "docker":
        # The killed run's container trained on: the takeover removed it before resuming.
        assert "of an earlier attempt of job" in log, workers.logs()
    # Nothing of the killed run's sandbox runs (bwrap: an empty cgroup waits for the reaper).
    assert [left for left in probe.alive() if not left.startswith("cgroup")] == []
    epochs = list(EpochMetric.objects.filter(submission=submission).values_list("epoch", flat=True))
    assert sorted(epochs) == [1, 2, 3, 4, 5]
    assert submission.result.epochs_run == 5
    resumed_from = int(submission.log.split("checkpoint of epoch ")[1].split(".")[0])
    # A Docker container trains on without its pool process until the takeover removes it,
    # and may checkpoint a further epoch meanwhile (written atomically, so still sound).
    assert 1 <= resumed_from <= (killed_at_epochs if sandbox_backend == "bwrap" else 4)


def test_a_flushed_broker_loses_no_queued_submission(workers, redis_broker, student):
    submission = make_submission(
        make_assignment(), student, source=FIXTURE_MODELS / "smoke_separable.json"
    )
    submit(submission)
    assert [name for name, _, _ in queued_tasks(redis_broker, "preflight")] == [
        "workers.build_submission"
    ]

    redis_broker.flushdb()  # Redis lost its queues: the message is gone
    assert queued_tasks(redis_broker, "preflight") == []
    workers.start()

    wait_for(ended(submission), timeout=300, workers=workers, what="the re-sent grading")
    assert submission.status == Status.FINISHED, f"{submission.message}\n{workers.logs()}"
    assert submission.result.passed is True


@pytest.mark.parametrize(
    "sandbox_backend", ["bwrap", pytest.param("docker", marks=pytest.mark.docker)], indirect=True
)
def test_a_cancelled_training_stops_its_sandbox_and_the_worker_grades_the_next(
    workers, student, grading_settings, sandbox_backend
):
    from workers.pipeline.stages import grading_key

    # Production timing: heartbeats every 30 s, ownership checked every 2 s (the default).
    workers.env.update({"GRADER_HEARTBEAT_INTERVAL": "30", "GRADER_HEARTBEAT_TIMEOUT": "300"})
    workers.env.pop("GRADER_CANCEL_CHECK_SECONDS", None)
    assignment = make_assignment(rules_yaml=SLOW_RULES)
    submission = make_submission(assignment, student, source=SLOW_MODULE)
    workers.start()
    submit(submission)
    wait_for(
        lambda: EpochMetric.objects.filter(submission=submission).exists(),
        timeout=300,
        workers=workers,
        what="the first epoch",
        interval=0.2,
    )
    submission.refresh_from_db()
    job_root = Path(grading_settings.GRADER_JOBS_DIR) / grading_key(submission)
    probe = wait_for_sandbox(sandbox_backend, job_root, timeout=30)

    began = time.monotonic()
    cancel_submission(submission_id=submission.pk, actor=student)
    elapsed = seconds_until_gone(probe, since=began, timeout=60)

    print(f"{sandbox_backend}: training sandbox gone {elapsed:.2f} s after the cancel")
    limit = settings.GRADER_CANCEL_CHECK_SECONDS + {"bwrap": 3.0, "docker": 7.0}[sandbox_backend]
    assert elapsed < limit, f"{elapsed:.1f} s\n{workers.logs()}"
    cancelled = Submission.objects.get(pk=submission.pk)
    assert cancelled.status == Status.CANCELLED
    assert cancelled.message == "Cancelled by student (the student)."

    # The same worker process takes the next submission and grades it as usual.
    following = make_submission(assignment, student, source=FIXTURE_MODELS / "smoke_separable.json")
    submit(following)
    wait_for(ended(following), timeout=300, workers=workers, what="the next grading")
    assert following.status == Status.FINISHED, f"{following.message}\n{workers.logs()}"
    assert following.result.passed is True

    # The cancelled one was left alone: no late verdict, no retry, folders gone.
    after = Submission.objects.get(pk=submission.pk)
    assert (after.status, after.reason, after.message, after.finished_at, after.log) == (
        cancelled.status,
        cancelled.reason,
        cancelled.message,
        cancelled.finished_at,
        cancelled.log,
    )
    assert not job_root.exists()
    logs = "".join(path.read_text(errors="replace") for path in workers.log_dir.glob("worker*"))
    assert "no longer owns the stage; stopping its sandbox" in logs
    assert "'aborted'" in logs  # the train task's return value: ended quietly, not retried
    assert "Retry in" not in logs and "unexpected error" not in logs
