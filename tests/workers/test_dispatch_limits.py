"""A stage message may run any waiting submission's stage: its Celery time limits must hold it.

The messages sent are read back from the real Redis queue.
"""

from __future__ import annotations

import pytest

from assignments.models import Submission
from assignments.services import dispatcher, grading
from tests.workers.conftest import SMOKE_MODULE, make_assignment, make_submission, queued_tasks
from workers import tasks

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Status = Submission.Status


def claim(worker: str, max_training_seconds: int) -> int | None:
    claimed = dispatcher.claim_next(
        queue="gpu", worker=worker, max_training_seconds=max_training_seconds
    )
    return claimed.submission_id if claimed else None


def trained_next(assignment, student, **fields) -> Submission:
    """A checked submission waiting for its training."""
    return make_submission(
        assignment, student, source=SMOKE_MODULE, status=Status.CHECKING, **fields
    )


def test_a_training_message_holds_the_longest_training_of_any_assignment(
    redis_broker, student, grading_settings, settings
):
    settings.GRADER_SANDBOX_GRACE_SECONDS = 60
    short = make_assignment(slug="short", time_limit_seconds=300)
    make_assignment(slug="long", time_limit_seconds=3600)
    submission = trained_next(short, student)

    # Outside a transaction the message goes at once.
    grading.send_stage_task(submission_id=submission.pk, stage=Status.TRAINING, assignment=short)

    [(name, args, options)] = queued_tasks(redis_broker, "gpu")
    assert (name, args) == ("workers.train_submission", [submission.pk])
    assert options["timelimit"] == [3600 + 120, 3600 + 60]  # hard, soft: the long assignment's


def test_a_message_too_short_for_the_first_training_takes_the_next_and_resends_the_other(
    redis_broker, student, grading_settings, settings
):
    settings.GRADER_SANDBOX_GRACE_SECONDS = 60
    long = make_assignment(slug="long", time_limit_seconds=3600)
    short = make_assignment(slug="short", time_limit_seconds=300)
    first = trained_next(long, student)
    second = trained_next(short, student)

    # Sent when every assignment's limit was 300 s: it cannot hold the hour-long training.
    assert claim("g@h#m1.1", 300) == second.pk
    assert claim("g@h#m2.1", 300) is None

    first.refresh_from_db()
    assert (first.status, first.worker) == (Status.CHECKING, "")
    [(name, args, options)] = queued_tasks(redis_broker, "gpu")
    assert (name, args) == ("workers.train_submission", [first.pk])
    assert options["timelimit"][0] >= 3600 + 120  # the new message can hold it
    assert claim("g@h#m3.1", 3600) == first.pk


class _Task:
    def __init__(self, timelimit, time_limit=None) -> None:
        self.request = type("Request", (), {"timelimit": timelimit})()
        self.time_limit = time_limit


def test_a_run_knows_the_longest_training_its_limits_hold(settings):
    settings.GRADER_SANDBOX_GRACE_SECONDS = 60
    assert tasks.training_budget(_Task([3720, 3660])) == 3600
    assert tasks.training_budget(_Task((None, None), time_limit=420)) == 300
    assert tasks.training_budget(_Task(None)) is None
