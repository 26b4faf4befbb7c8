"""The reaper: a submission is never lost when a worker dies or the broker forgets a message.

The reaper task runs for real (`reap_stale_submissions.apply()`), against the real database, and
the tasks it sends are read back from the real Redis queue.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from assignments.models import Assignment, Submission
from assignments.services import grading
from tests.workers.conftest import SMOKE_MODULE, make_assignment, make_submission, queued_tasks
from workers.tasks import reap_stale_submissions

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Status = Submission.Status


@pytest.fixture
def timeouts(settings):
    settings.GRADER_HEARTBEAT_TIMEOUT = 60
    settings.GRADER_QUEUE_TIMEOUT = 600
    settings.GRADER_MAX_ATTEMPTS = 3
    return settings


def running(assignment, student, status, *, silent_for: timedelta, attempts: int = 0):
    return make_submission(
        assignment,
        student,
        source=SMOKE_MODULE,
        status=status,
        worker="gpu0@dead#1",
        heartbeat_at=timezone.now() - silent_for,
        attempts=attempts,
    )


def test_a_stage_whose_worker_went_silent_is_sent_again(
    redis_broker, timeouts, student, grading_settings
):
    submission = running(make_assignment(), student, Status.TRAINING, silent_for=timedelta(hours=1))

    acted = reap_stale_submissions.apply().get()

    submission.refresh_from_db()
    assert acted == [submission.pk]
    assert (submission.status, submission.worker, submission.attempts) == (
        Status.CHECKING,
        "",
        1,
    )
    [(name, args, options)] = queued_tasks(redis_broker, "gpu")
    assert (name, args) == ("workers.train_submission", [submission.pk])
    assert options["timelimit"][1] > submission.assignment.time_limit_seconds
    # The new attempt can claim it; the dead worker's name no longer owns anything.
    assert grading.claim_stage(
        submission_id=submission.pk,
        from_status=Status.CHECKING,
        to_status=Status.TRAINING,
        worker="gpu1@alive#2",
    )
    assert not grading.heartbeat(submission_id=submission.pk, worker="gpu0@dead#1")


def test_an_evaluation_only_stage_goes_back_to_checked(
    redis_broker, timeouts, student, grading_settings
):
    assignment = make_assignment(mode=Assignment.Mode.EVALUATE)
    submission = running(assignment, student, Status.EVALUATING, silent_for=timedelta(hours=1))

    reap_stale_submissions.apply()

    submission.refresh_from_db()
    assert submission.status == Status.CHECKING
    assert queued_tasks(redis_broker, "gpu")[0][:2] == (
        "workers.evaluate_submission",
        [submission.pk],
    )


def test_a_live_stage_is_left_alone(redis_broker, timeouts, student, grading_settings):
    submission = running(
        make_assignment(), student, Status.TRAINING, silent_for=timedelta(seconds=5)
    )

    assert reap_stale_submissions.apply().get() == []

    submission.refresh_from_db()
    assert (submission.status, submission.worker) == (Status.TRAINING, "gpu0@dead#1")
    assert queued_tasks(redis_broker, "gpu") == []


def test_after_the_last_attempt_the_submission_ends_as_an_infrastructure_error(
    redis_broker, timeouts, student, grading_settings
):
    submission = running(
        make_assignment(), student, Status.BUILDING, silent_for=timedelta(hours=1), attempts=2
    )

    reap_stale_submissions.apply()

    submission.refresh_from_db()
    assert (submission.status, submission.reason) == (Status.ERROR, "infrastructure")
    assert "stopped responding during building 3 times" in submission.message
    assert submission.finished_at is not None
    assert queued_tasks(redis_broker, "preflight") == []


def test_a_waiting_submission_whose_message_was_lost_is_sent_again_once_per_period(
    redis_broker, timeouts, student, grading_settings
):
    submission = make_submission(make_assignment(), student, source=SMOKE_MODULE)
    Submission.objects.filter(pk=submission.pk).update(
        queued_at=timezone.now() - timedelta(hours=2)
    )
    fresh = make_submission(make_assignment(slug="fresh"), student, source=SMOKE_MODULE)

    assert reap_stale_submissions.apply().get() == [submission.pk]
    assert reap_stale_submissions.apply().get() == []  # touched: not again before the timeout

    submission.refresh_from_db()
    assert (submission.status, submission.attempts) == (Status.QUEUED, 0)
    sent = queued_tasks(redis_broker, "preflight")
    assert [args for _, args, _ in sent] == [[submission.pk]]
    assert fresh.pk not in sent[0][1]


def test_ended_submissions_are_never_touched(redis_broker, timeouts, student, grading_settings):
    assignment = make_assignment()
    old = timezone.now() - timedelta(days=1)
    for status in Submission.TERMINAL_STATUSES:
        make_submission(
            assignment,
            student,
            source=SMOKE_MODULE,
            status=status,
            queued_at=old,
            heartbeat_at=old,
        )

    assert reap_stale_submissions.apply().get() == []


def owned_by(assignment, student, worker: str, *, beat: timedelta, attempts: int = 0):
    return make_submission(
        assignment,
        student,
        source=SMOKE_MODULE,
        status=Status.TRAINING,
        worker=worker,
        heartbeat_at=timezone.now() - beat,
        attempts=attempts,
    )


def test_a_restarted_worker_takes_back_at_once_what_its_killed_run_left(
    redis_broker, timeouts, student, grading_settings
):
    assignment = make_assignment()
    started = timezone.now()
    # Heartbeats seconds old: the reaper (60 s timeout here) would wait, the restart need not.
    earlier = owned_by(assignment, student, "gpu@host#3f2a.9c1", beat=timedelta(seconds=5))
    on_its_gpu = owned_by(assignment, student, "gpu@host/gpu1#77aa.01", beat=timedelta(seconds=5))
    other_node = owned_by(assignment, student, "gpu@host2#3f2a.9c1", beat=timedelta(seconds=5))
    last_try = owned_by(
        assignment, student, "gpu@host#aa.bb", beat=timedelta(seconds=5), attempts=2
    )
    # Claimed by the new run itself (after it started): left alone.
    current = owned_by(assignment, student, "gpu@host#beef.02", beat=-timedelta(seconds=1))

    assert reap_stale_submissions.apply().get() == []
    acted = grading.requeue_stages_of(node="gpu@host", started_at=started)

    assert sorted(acted) == sorted([earlier.pk, on_its_gpu.pk, last_try.pk])
    for sub in (earlier, on_its_gpu):
        sub.refresh_from_db()
        assert (sub.status, sub.worker, sub.attempts) == (Status.CHECKING, "", 1)
    last_try.refresh_from_db()
    assert (last_try.status, last_try.reason) == (Status.ERROR, Submission.Reason.INFRASTRUCTURE)
    assert "was stopped during training 3 times" in last_try.message
    for sub in (other_node, current):
        before = (sub.status, sub.worker, sub.attempts)
        sub.refresh_from_db()
        assert (sub.status, sub.worker, sub.attempts) == before
    sent = sorted(args[0] for name, args, _ in queued_tasks(redis_broker, "gpu"))
    assert sent == sorted([earlier.pk, on_its_gpu.pk])
