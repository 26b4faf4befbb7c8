"""The fair order with a real worker, Redis and PostgreSQL: a worker killed mid-training while
others wait. Its training is recovered first (it was first in the order) and resumes from its
checkpoint; the submissions that waited keep the fair order: a classmate's first upload trains
before the flooding student's second, though uploaded after it.
"""

from __future__ import annotations

import socket

import pytest
from django.utils import timezone

from assignments.models import Enrollment, EpochMetric, Submission
from assignments.services.submissions import create_submission
from tests.workers import test_e2e_pipeline as e2e
from tests.workers.conftest import FIXTURE_MODELS, make_assignment
from tests.workers.test_e2e_pipeline import SLOW_MODULE, SLOW_RULES, ended, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.services,
    pytest.mark.bwrap,
    pytest.mark.tf,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(900),
]

Status = Submission.Status
workers = e2e.workers
sandbox_backend = e2e.sandbox_backend


def test_a_worker_killed_mid_training_while_others_wait_is_recovered_and_the_order_kept(
    workers, student, django_user_model
):
    # The reaper waits far longer than this test: the restarted worker re-sends the stage. One
    # worker process: it trains the slow model while the others wait.
    workers.env.update({"GRADER_HEARTBEAT_TIMEOUT": "600", "GRADER_QUEUE_TIMEOUT": "600"})
    assignment = make_assignment(rules_yaml=SLOW_RULES, max_waiting_per_student=5)
    classmate = django_user_model.objects.create_user(username="classmate", password="x")
    for user in (student, classmate):
        Enrollment.objects.create(course=assignment.course, user=user)
    model = (FIXTURE_MODELS / "smoke_separable.json").read_bytes()
    slow = create_submission(
        assignment=assignment, student=student, filename="slow.py", data=SLOW_MODULE.encode()
    )
    node = f"fair@{socket.gethostname()}"
    worker = workers.start(node)
    wait_for(
        lambda: EpochMetric.objects.filter(submission=slow).exists(),
        timeout=400,
        workers=workers,
        what="epoch 1 of the slow training",
        interval=0.1,
    )
    # While it trains, the same student uploads again, then a classmate uploads a first model.
    second = create_submission(
        assignment=assignment, student=student, filename="a.json", data=model
    )
    first_of_classmate = create_submission(
        assignment=assignment, student=classmate, filename="b.json", data=model
    )
    wait_for(
        lambda: EpochMetric.objects.filter(submission=slow).count() >= 2,
        timeout=300,
        workers=workers,
        what="epoch 2 of the slow training",
        interval=0.1,
    )
    workers.kill(worker)  # SIGKILL: the training stays claimed by the dead worker
    killed_at = timezone.now()
    slow.refresh_from_db()
    assert slow.status == Status.TRAINING and slow.worker.startswith(f"{node}#")
    waiting = Submission.objects.filter(pk__in=[second.pk, first_of_classmate.pk])
    assert set(waiting.values_list("status", flat=True)) == {Status.QUEUED}  # both wait

    workers.start(node)
    for submission in (slow, second, first_of_classmate):
        wait_for(ended(submission), timeout=400, workers=workers, what=f"#{submission.pk}")
        assert submission.status == Status.FINISHED, f"{submission.message}\n{workers.logs()}"

    # Recovered: resumed from its checkpoint, one attempt counted, before the others trained.
    assert slow.attempts == 1 and "Training resumed from the checkpoint" in slow.log
    assert killed_at < slow.training_at < first_of_classmate.training_at
    # Order kept: the classmate's first before the flooding student's second.
    assert first_of_classmate.training_at < second.training_at
    assert first_of_classmate.finished_at < second.finished_at
