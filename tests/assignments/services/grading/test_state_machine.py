"""The grading state machine (`assignments.services.grading`) on the real database and broker.

Ownership is the heart of it: a stage is claimed by one conditional UPDATE, and every later
write presents the owner's name, so duplicates, redeliveries and superseded workers write nothing.
Sent tasks are read back from the real Redis queue.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from assignments.models import AuditEntry, EpochMetric, Result, Submission
from assignments.selectors.queue_stats import queue_stats
from assignments.services import grading
from grader.errors import GraderError
from tests.conftest import service_missing
from tests.workers.conftest import (
    SMOKE_MODULE,
    make_assignment,
    make_submission,
    queued_tasks,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Status = Submission.Status


@pytest.fixture
def on_postgresql(postgres_url: str) -> None:
    """These tests race real connections: they need the PostgreSQL the suite runs on in CI."""
    if connection.vendor != "postgresql":
        service_missing(f"PostgreSQL as the test database (DATABASE_URL; got {connection.vendor})")


@pytest.fixture
def submission(student, grading_settings) -> Submission:
    return make_submission(make_assignment(), student, source=SMOKE_MODULE)


def claim(submission: Submission, from_status: str, to_status: str, worker: str) -> bool:
    return grading.claim_stage(
        submission_id=submission.pk, from_status=from_status, to_status=to_status, worker=worker
    )


@pytest.mark.parametrize("racers", [2, 8])
def test_exactly_one_of_racing_workers_claims_the_stage(on_postgresql, submission, racers):
    barrier = threading.Barrier(racers)
    outcomes: dict[str, bool] = {}

    def race(name: str) -> None:
        try:
            barrier.wait()
            outcomes[name] = claim(submission, Status.QUEUED, Status.BUILDING, name)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=race, args=(f"w{i}#t{i}",)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [name for name, won in outcomes.items() if won]
    assert len(outcomes) == racers
    assert len(winners) == 1
    submission.refresh_from_db()
    assert submission.status == Status.BUILDING
    assert submission.worker == winners[0]
    assert submission.building_at is not None


def test_claim_refuses_a_stage_that_is_not_waiting_in_the_expected_status(submission):
    assert not claim(submission, Status.BUILDING, Status.CHECKING, "w#1")
    assert claim(submission, Status.QUEUED, Status.BUILDING, "w#1")
    # Claimed: a duplicate message for the same stage finds it owned.
    assert not claim(submission, Status.QUEUED, Status.BUILDING, "w#2")
    # Running, not finished: the next stage cannot start yet.
    assert not claim(submission, Status.BUILDING, Status.CHECKING, "w#2")


@pytest.mark.parametrize(
    "first",
    ["celery@a#4cfcbccc-972.0a0b0c", "celery@a#4cfcbccc-972"],  # this and the older name format
)
def test_a_redelivered_task_takes_its_stage_over_and_fences_out_its_earlier_run(
    submission, settings, first
):
    settings.GRADER_MAX_ATTEMPTS = 3
    _to_training(submission, worker=first)
    stale = timezone.now() - timedelta(minutes=1)
    Submission.objects.filter(pk=submission.pk).update(heartbeat_at=stale)
    # The same task (id `4cfcbccc-972...`) again, maybe on another host, after its run was killed.
    redelivered = "celery@b#4cfcbccc-972.1d2e3f"

    # Another task, a duplicate or an older one, still finds the stage owned.
    assert not claim(submission, Status.CHECKING, Status.TRAINING, "celery@a#77aa88bb-123.0a0b0c")
    assert not claim(submission, Status.CHECKING, Status.TRAINING, "celery@a#4cfcbccc-97.0a0b0c")
    # A run of the same task claiming another stage takes nothing over.
    assert not claim(submission, Status.BUILDING, Status.CHECKING, redelivered)
    assert claim(submission, Status.CHECKING, Status.TRAINING, redelivered)

    submission.refresh_from_db()
    assert (submission.status, submission.worker) == (Status.TRAINING, redelivered)
    assert submission.heartbeat_at > stale
    assert submission.attempts == 1  # counted like a re-queue by the reaper
    # The earlier run, were it still alive, has lost the stage: its writes are refused.
    assert not grading.heartbeat(submission_id=submission.pk, worker=first)
    assert not grading.complete_training(
        submission_id=submission.pk, worker=first, epochs_run=1, training_seconds=1.0, log=""
    )
    assert grading.heartbeat(submission_id=submission.pk, worker=redelivered)
    # The same run claiming again (a retried claim) is no takeover.
    assert not claim(submission, Status.CHECKING, Status.TRAINING, redelivered)
    # Past GRADER_MAX_ATTEMPTS a submission that kills its worker every time is left to the
    # reaper, which ends it, instead of being redelivered forever.
    assert claim(submission, Status.CHECKING, Status.TRAINING, "celery@a#4cfcbccc-972.aaaaaa")
    assert not claim(submission, Status.CHECKING, Status.TRAINING, "celery@a#4cfcbccc-972.bbbbbb")
    submission.refresh_from_db()
    assert (submission.worker, submission.attempts) == ("celery@a#4cfcbccc-972.aaaaaa", 2)


def test_a_redelivered_task_takes_nothing_over_once_its_stage_is_done(redis_broker, submission):
    worker = "celery@a#5d6e7f80-111.0a0b0c"
    assert claim(submission, Status.QUEUED, Status.BUILDING, worker)
    assert grading.complete_build(
        submission_id=submission.pk, worker=worker, model_config={}, training_config=None
    )

    assert not claim(submission, Status.QUEUED, Status.BUILDING, "celery@b#5d6e7f80-111.1a1b1c")
    submission.refresh_from_db()
    assert (submission.status, submission.worker, submission.attempts) == (Status.BUILDING, "", 0)


def test_finished_stage_hands_over_and_sends_the_next_task(redis_broker, submission):
    assert claim(submission, Status.QUEUED, Status.BUILDING, "w#1")
    config = {"class_name": "Functional", "config": {}}

    assert grading.complete_build(
        submission_id=submission.pk,
        worker="w#1",
        model_config=config,
        training_config={"epochs": 2},
        log="built\n",
    )

    submission.refresh_from_db()
    assert (submission.status, submission.worker) == (Status.BUILDING, "")
    assert submission.model_config == config
    assert "built" in submission.log
    assert queued_tasks(redis_broker, "preflight")[0][:2] == (
        "workers.check_submission",
        [submission.pk],
    )
    assert claim(submission, Status.BUILDING, Status.CHECKING, "w#2")


def test_writes_of_a_worker_that_lost_the_stage_are_refused(redis_broker, submission, instructor):
    assert claim(submission, Status.QUEUED, Status.BUILDING, "w#1")
    grading.cancel_submission(submission_id=submission.pk, actor=instructor)

    assert not grading.heartbeat(submission_id=submission.pk, worker="w#1")
    assert not grading.complete_build(
        submission_id=submission.pk, worker="w#1", model_config={}, training_config=None
    )
    assert not grading.mark_failed(
        submission_id=submission.pk, worker="w#1", reason="timeout", message="x", stage="build"
    )
    submission.refresh_from_db()
    assert submission.status == Status.CANCELLED
    assert queued_tasks(redis_broker, "preflight") == []


def _to_training(submission: Submission, worker: str = "gpu0@h#1") -> None:
    Submission.objects.filter(pk=submission.pk).update(status=Status.CHECKING, worker="")
    Result.objects.create(submission=submission, rules_version=1)
    assert claim(submission, Status.CHECKING, Status.TRAINING, worker)


def test_a_repeated_epoch_report_updates_the_one_row(submission):
    _to_training(submission)
    for loss in (1.5, 1.25):
        assert grading.record_epoch(
            submission_id=submission.pk,
            worker="gpu0@h#1",
            epoch=1,
            metrics={"loss": loss, "accuracy": 0.5, "val_accuracy": 0.4},
        )

    rows = list(EpochMetric.objects.filter(submission=submission).values("epoch", "loss"))
    assert rows == [{"epoch": 1, "loss": 1.25}]
    assert not grading.record_epoch(
        submission_id=submission.pk, worker="gpu1@h#2", epoch=2, metrics={"loss": 1.0}
    )


def test_a_diverged_epoch_is_stored_without_nan(submission):
    _to_training(submission)
    assert grading.record_epoch(
        submission_id=submission.pk,
        worker="gpu0@h#1",
        epoch=1,
        metrics={"loss": float("nan"), "val_loss": float("inf"), "accuracy": 0.25},
    )
    row = EpochMetric.objects.get(submission=submission)
    assert (row.loss, row.val_loss, row.accuracy) == (None, None, 0.25)


@pytest.mark.parametrize("epoch", [-1, 10**9, "3", True, 2.5])
def test_a_forged_epoch_number_is_refused(submission, epoch):
    _to_training(submission)
    with pytest.raises(ValueError, match="is not an epoch number"):
        grading.record_epoch(
            submission_id=submission.pk, worker="gpu0@h#1", epoch=epoch, metrics={}
        )
    assert not EpochMetric.objects.filter(submission=submission).exists()


def test_the_heartbeat_thread_keeps_the_stage_alive_until_ownership_is_lost(submission, instructor):
    from workers.pipeline.heartbeat import Heartbeat

    _to_training(submission)
    stale = timezone.now() - timedelta(hours=1)
    Submission.objects.filter(pk=submission.pk).update(heartbeat_at=stale)

    with Heartbeat(submission_id=submission.pk, worker="gpu0@h#1", interval=0.1) as beat:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            submission.refresh_from_db()
            if submission.heartbeat_at > stale:
                break
            time.sleep(0.05)
        assert submission.heartbeat_at > stale
        grading.cancel_submission(submission_id=submission.pk, actor=instructor)
        while time.monotonic() < deadline and not beat.lost:
            time.sleep(0.05)
        assert beat.lost


def test_a_train_task_carries_time_limits_that_nest_around_the_sandbox(
    redis_broker, student, grading_settings
):
    assignment = make_assignment(time_limit_seconds=120)
    submission = make_submission(assignment, student, source=SMOKE_MODULE)
    Submission.objects.filter(pk=submission.pk).update(status=Status.BUILDING, worker="")
    assert claim(submission, Status.BUILDING, Status.CHECKING, "w#1")

    assert grading.complete_check(
        submission_id=submission.pk,
        worker="w#1",
        checks={"params": {"total": 10, "trainable": 10}},
        rules=[],
        training_config={"epochs": 2},
        score=None,
        stop=False,
    )

    [(name, args, options)] = queued_tasks(redis_broker, "gpu")
    assert (name, args) == ("workers.train_submission", [submission.pk])
    hard, soft = options["timelimit"]
    assert 120 < soft < hard
    assert Result.objects.get(submission=submission).params_total == 10


def test_a_static_failure_that_stops_ends_failed_with_the_rules_recorded(redis_broker, submission):
    Submission.objects.filter(pk=submission.pk).update(status=Status.BUILDING, worker="")
    assert claim(submission, Status.BUILDING, Status.CHECKING, "w#1")
    rules = [{"id": "max_params", "passed": False, "message": "Too many.", "points": 1}]

    assert grading.complete_check(
        submission_id=submission.pk,
        worker="w#1",
        checks={"params": {"total": 10, "trainable": 10}, "rules": rules},
        rules=rules,
        training_config=None,
        score=0.0,
        stop=True,
        message="1 rule failed: Too many.",
    )

    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.FAILED, "rules")
    assert submission.message == "1 rule failed: Too many."
    result = Result.objects.get(submission=submission)
    assert (result.passed, result.score, result.rules) == (False, 0.0, rules)
    assert queued_tasks(redis_broker, "gpu") == []


def test_finalize_writes_the_verdict_exactly_once(submission):
    _to_training(submission)
    assert grading.complete_training(
        submission_id=submission.pk, worker="gpu0@h#1", epochs_run=2, training_seconds=3.0
    )
    assert claim(submission, Status.TRAINING, Status.EVALUATING, "gpu0@h#2")
    assert grading.complete_evaluation(
        submission_id=submission.pk,
        worker="gpu0@h#2",
        accuracy=0.75,
        loss=0.5,
        per_class_accuracy=[0.5, 1.0],
        confusion_matrix=[[1, 1], [0, 2]],
    )

    assert grading.finalize(submission_id=submission.pk, rules=[], passed=True, score=100.0)
    assert not grading.finalize(submission_id=submission.pk, rules=[], passed=False, score=0.0)

    submission.refresh_from_db()
    result = Result.objects.get(submission=submission)
    assert submission.status == Status.FINISHED and submission.finished_at is not None
    assert (result.passed, result.score, result.accuracy, result.epochs_run) == (
        True,
        100.0,
        0.75,
        2,
    )


def test_regrade_resets_the_grading_keeps_the_override_and_sends_the_build(
    redis_broker, submission, instructor
):
    _to_training(submission)
    grading.record_epoch(
        submission_id=submission.pk, worker="gpu0@h#1", epoch=1, metrics={"loss": 1.0}
    )
    Result.objects.filter(submission=submission).update(
        accuracy=0.9, score=80.0, score_override=95.0, override_reason="Regraded by hand."
    )

    returned = grading.regrade_submission(submission_id=submission.pk, actor=instructor)

    submission.refresh_from_db()
    assert returned.pk == submission.pk
    assert (submission.status, submission.worker, submission.attempts) == (Status.QUEUED, "", 0)
    assert submission.training_at is None and submission.model_config is None
    assert not EpochMetric.objects.filter(submission=submission).exists()
    result = Result.objects.get(submission=submission)
    assert (result.accuracy, result.score, result.score_override) == (None, None, 95.0)
    audit = AuditEntry.objects.get(action="regrade")
    assert (audit.actor, audit.submission_id) == (instructor, submission.pk)
    assert audit.details["previous"]["status"] == Status.TRAINING
    assert queued_tasks(redis_broker, "preflight")[0][:2] == (
        "workers.build_submission",
        [submission.pk],
    )
    # The superseded training worker can no longer write.
    assert not grading.heartbeat(submission_id=submission.pk, worker="gpu0@h#1")


def test_regrade_assignment_requeues_all_but_cancelled_submissions(
    redis_broker, student, instructor, grading_settings
):
    assignment = make_assignment()
    done = make_submission(assignment, student, source=SMOKE_MODULE, status=Status.FINISHED)
    failed = make_submission(assignment, student, source=SMOKE_MODULE, status=Status.FAILED)
    make_submission(assignment, student, source=SMOKE_MODULE, status=Status.CANCELLED)

    count = grading.regrade_assignment(assignment_id=assignment.pk, actor=instructor)

    assert count == 2
    sent = sorted(args[0] for _, args, _ in queued_tasks(redis_broker, "preflight"))
    assert sent == sorted([done.pk, failed.pk])
    assert AuditEntry.objects.get(action="regrade_assignment").details == {"submissions": 2}


def test_cancelling_an_ended_submission_is_refused(student, instructor, grading_settings):
    submission = make_submission(
        make_assignment(), student, source=SMOKE_MODULE, status=Status.FINISHED
    )
    with pytest.raises(GraderError, match=r"is finished\. Expected a queued") as refused:
        grading.cancel_submission(submission_id=submission.pk, actor=instructor)
    # A domain error the site maps like every other one.
    assert isinstance(refused.value, grading.InvalidTransition)
    assert refused.value.to_dict()["kind"] == "invalid_transition"
    assert not AuditEntry.objects.exists()


def test_queue_stats_count_waiting_and_running_per_queue_and_gpu(student, grading_settings):
    assignment = make_assignment()
    old = timezone.now() - timedelta(minutes=10)
    waiting = make_submission(assignment, student, source=SMOKE_MODULE)
    Submission.objects.filter(pk=waiting.pk).update(queued_at=old)
    make_submission(assignment, student, source=SMOKE_MODULE)
    make_submission(
        assignment, student, source=SMOKE_MODULE, status=Status.CHECKING, worker=""
    )  # checked, waiting for a GPU
    now = timezone.now()
    for worker in ("gpu0@h#a", "gpu1@h#b"):
        make_submission(
            assignment,
            student,
            source=SMOKE_MODULE,
            status=Status.TRAINING,
            worker=worker,
            heartbeat_at=now,
        )
    make_submission(
        assignment,
        student,
        source=SMOKE_MODULE,
        status=Status.BUILDING,
        worker="cpu@h#c",
        heartbeat_at=now - timedelta(hours=1),
    )
    make_submission(assignment, student, source=SMOKE_MODULE, status=Status.FINISHED)

    stats = queue_stats()

    assert stats["queues"] == {
        "preflight": {"waiting": 2, "running": 1},
        "gpu": {"waiting": 1, "running": 2},
    }
    assert stats["gpus"] == {"gpu0@h": 1, "gpu1@h": 1}
    assert stats["stalled"] == 1
    assert stats["oldest_waiting"]["submission_id"] == waiting.pk
    assert stats["oldest_waiting"]["seconds"] >= 600
