"""Submissions whose training waits for a dataset the workers have not installed
(`assignments.services.data_wait`): parked out of the pipeline, not charged to the quota
(within a bound), resumed by the dataset commands and by the reaper's tick, and explained to
the student without a host path or a command.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from assignments.models import Submission
from assignments.services import data_wait, grading
from assignments.services.submissions import counted_today, submissions_left_today
from tests.support.site_fixtures import make_submission

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("uploads_dir")]

Status = Submission.Status
WORKER = "gpu0@host#abc.1"


@pytest.fixture
def cifar_assignment(assignment):
    assignment.dataset = "cifar10"
    assignment.save()
    return assignment


@pytest.fixture
def empty_data_dir(settings, tmp_path) -> Path:
    """The workers' data directory, with no dataset in it (as on a fresh, offline machine)."""
    settings.GRADER_DATA_DIR = tmp_path / "data"
    settings.GRADER_DATA_DIR.mkdir()
    return settings.GRADER_DATA_DIR


def training(assignment, student) -> Submission:
    """A checked submission whose training stage `WORKER` has just claimed."""
    submission = make_submission(assignment, student, status=Status.CHECKING, passed=None)
    assert grading.claim_stage(
        submission_id=submission.pk,
        from_status=Status.CHECKING,
        to_status=Status.TRAINING,
        worker=WORKER,
    )
    return submission


def park(submission: Submission, worker: str = WORKER) -> bool:
    return data_wait.park_for_data(
        submission_id=submission.pk,
        worker=worker,
        dataset="cifar10",
        detail="CIFAR-10 is not in `/srv/grader/data`; run `manage.py fetch_dataset cifar10`.",
    )


def write_cifar_raw(data_dir: Path, per_batch: int = 4) -> None:
    """CIFAR-10 in Keras' download layout, tiny: five train batches and a test batch."""
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_a_parked_submission_waits_out_of_the_pipeline(cifar_assignment, student, broker_dir):
    submission = training(cifar_assignment, student)

    assert park(submission)

    submission.refresh_from_db()
    assert (submission.status, submission.worker) == (Status.WAITING_DATA, "")
    assert submission.message == data_wait.WAITING_MESSAGE
    assert submission.message.startswith(
        "Training is not available yet: the course staff has been told."
    )
    # Nothing a student reads names the host's folders or an operator's command.
    assert "/srv" not in submission.message and "manage.py" not in submission.message
    assert submission.is_active and submission.status not in Submission.ACTIVE_STATUSES
    # No task is pending for it, and nothing re-sends one.
    assert broker_dir.count() == 0
    assert grading.requeue_stale(older_than_seconds=0, waiting_older_than_seconds=0) == []
    assert broker_dir.count() == 0


def test_a_superseded_worker_parks_nothing(cifar_assignment, student):
    submission = training(cifar_assignment, student)
    grading.cancel_submission(submission_id=submission.pk, actor=student)

    assert not park(submission)
    submission.refresh_from_db()
    assert submission.status == Status.CANCELLED


def test_a_waiting_submission_is_not_charged_to_the_quota(cifar_assignment, student):
    assert cifar_assignment.daily_quota == 3
    submission = training(cifar_assignment, student)
    assert counted_today(assignment=cifar_assignment, student_id=student.pk) == 1

    park(submission)

    assert counted_today(assignment=cifar_assignment, student_id=student.pk) == 0
    assert submissions_left_today(assignment=cifar_assignment, student_id=student.pk) == 3


def test_at_most_a_quota_of_submissions_wait_uncharged(cifar_assignment, student):
    # An outage must not turn into unlimited trainings once the data arrives.
    waiting = [training(cifar_assignment, student) for _ in range(4)]
    for submission in waiting:
        park(submission)

    exempt = [Submission.objects.get(pk=s.pk).quota_exempt for s in waiting]
    assert exempt == [True, True, True, False]
    assert counted_today(assignment=cifar_assignment, student_id=student.pk) == 1
    charged = Submission.objects.get(pk=waiting[-1].pk)
    assert charged.message.startswith("Training is not available yet")
    assert "daily limit" not in charged.message


def test_the_student_can_cancel_a_waiting_submission(cifar_assignment, student):
    submission = training(cifar_assignment, student)
    park(submission)

    grading.cancel_submission(submission_id=submission.pk, actor=student)

    submission.refresh_from_db()
    assert submission.status == Status.CANCELLED


def test_resume_sends_waiting_submissions_to_training(cifar_assignment, student, broker_dir):
    submission = training(cifar_assignment, student)
    park(submission)
    other = make_submission(cifar_assignment, student, status=Status.QUEUED, with_result=False)

    resumed = data_wait.resume_waiting(dataset="cifar10")

    assert resumed == [submission.pk]
    submission.refresh_from_db()
    # Checked, next stage pending: exactly the state a finished check stage leaves.
    assert (submission.status, submission.worker, submission.message) == (Status.CHECKING, "", "")
    assert submission.quota_exempt  # the exemption stays once it trains
    assert broker_dir.count() == 1  # the train task
    assert Submission.objects.get(pk=other.pk).status == Status.QUEUED
    assert data_wait.resume_waiting(dataset="cifar10") == []  # idempotent
    assert broker_dir.count() == 1


def test_resume_leaves_other_datasets_waiting(cifar_assignment, student, broker_dir):
    submission = training(cifar_assignment, student)
    park(submission)

    assert data_wait.resume_waiting(dataset="mnist") == []
    assert data_wait.resume_ready(is_ready=lambda name: False) == []
    assert Submission.objects.get(pk=submission.pk).status == Status.WAITING_DATA
    assert data_wait.waiting_by_dataset() == {"cifar10": 1}
    assert broker_dir.count() == 0


def test_the_reaper_tick_prepares_raw_files_put_in_place_and_resumes(
    cifar_assignment, student, broker_dir, empty_data_dir
):
    submission = training(cifar_assignment, student)
    park(submission)
    assert data_wait.resume_ready() == []  # nothing in the data directory yet

    write_cifar_raw(empty_data_dir)  # an operator copies Keras' download folder in
    assert data_wait.resume_ready() == [submission.pk]

    assert Submission.objects.get(pk=submission.pk).status == Status.CHECKING
    assert (empty_data_dir / "prepared" / "cifar10" / "test" / "x.npy").is_file()
    assert broker_dir.count() == 1


def test_the_reaper_task_runs_the_tick(cifar_assignment, student, broker_dir, empty_data_dir):
    from workers.tasks import reap_stale_submissions

    submission = training(cifar_assignment, student)
    park(submission)
    write_cifar_raw(empty_data_dir)

    assert submission.pk in reap_stale_submissions.run()
    assert Submission.objects.get(pk=submission.pk).status == Status.CHECKING


def test_prepare_dataset_resumes_the_submissions_waiting_for_it(
    cifar_assignment, student, broker_dir, empty_data_dir, capsys
):
    submission = training(cifar_assignment, student)
    park(submission)
    write_cifar_raw(empty_data_dir)

    call_command("prepare_dataset", "cifar10")

    assert "1 submission waiting for cifar10 sent on to training" in capsys.readouterr().out
    assert Submission.objects.get(pk=submission.pk).status == Status.CHECKING
    assert broker_dir.count() == 1


def test_preparing_into_another_folder_resumes_nothing(
    cifar_assignment, student, broker_dir, empty_data_dir, tmp_path
):
    # Only the folder the workers read makes the data available to them.
    submission = training(cifar_assignment, student)
    park(submission)
    elsewhere = tmp_path / "elsewhere"
    write_cifar_raw(elsewhere)

    call_command("prepare_dataset", "cifar10", "--data-dir", str(elsewhere))

    assert Submission.objects.get(pk=submission.pk).status == Status.WAITING_DATA
    assert broker_dir.count() == 0
