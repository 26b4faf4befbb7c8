"""The warm train sandbox: started ahead of a training, claimed by the next one of its kind.

The stages run as a worker process runs them (`workers.pipeline.stages`, the worker's own
sandbox: real bubblewrap). A warm train sandbox must run exactly the cold job, hand its folder to
the grading that claims it (checkpoints of an earlier attempt included, so a resumed training
resumes), train what a cold sandbox trains, and be gone once it cannot be claimed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from assignments.models import EpochMetric, Result, Submission
from tests.workers.conftest import SMOKE_MODULE, make_assignment, make_submission
from workers.pipeline import stages, warm_train
from workers.pipeline.warm_sandbox import remove_orphans

pytestmark = [
    pytest.mark.services,
    pytest.mark.bwrap,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(400),
]

Status = Submission.Status


@pytest.fixture
def worker_sandbox(bwrap_available, grading_settings, redis_broker) -> Iterator[object]:
    grading_settings.GRADER_SANDBOX = "bwrap"
    grading_settings.GRADER_WARM_BUILD = False
    grading_settings.GRADER_WARM_EVALUATE = False
    grading_settings.GRADER_WARM_TRAIN = True
    warm_train.stop()
    yield grading_settings
    warm_train.stop()


def _checked(assignment, student) -> Submission:
    submission = make_submission(assignment, student, source=SMOKE_MODULE)
    assert stages.execute_build(submission.pk, worker="cpu@h#b") == stages.DONE
    assert stages.execute_check(submission.pk, worker="cpu@h#c") == stages.DONE
    submission.refresh_from_db()
    return submission


def _train_folder(submission: Submission) -> Path:
    return stages.jobs_root() / stages.grading_key(submission) / "train"


def _losses(submission: Submission) -> list[float]:
    metrics = EpochMetric.objects.filter(submission=submission).order_by("epoch")
    return [m.loss for m in metrics]


def test_the_next_training_claims_the_warm_sandbox_and_trains_what_a_cold_one_trains(
    worker_sandbox, student
) -> None:
    assignment = make_assignment()
    first = _checked(assignment, student)
    assert stages.execute_train(first.pk, worker="gpu@h#t") == stages.DONE  # cold
    warm = warm_train._waiting
    assert warm is not None and not warm.done.is_set()  # started by the training that ended
    waiting_folder = warm.folder
    assert waiting_folder.is_dir() and waiting_folder.name.startswith(warm_train.PREFIX)

    second = _checked(assignment, student)
    assert stages.execute_train(second.pk, worker="gpu@h#t") == stages.DONE

    assert warm.claimed and warm.done.is_set()
    # Its folder became the grading's own train folder; the waiting folder is gone.
    assert warm.dirs.root == _train_folder(second)
    assert not waiting_folder.exists()
    assert (_train_folder(second) / "out" / "result.json").is_file()
    # The same model, seed and data: the warm sandbox trained exactly what the cold one did.
    assert _losses(first) and _losses(second) == _losses(first)
    # And a new one waits for the next training.
    assert warm_train._waiting is not None and warm_train._waiting is not warm

    for submission in (first, second):
        assert stages.execute_evaluate(submission.pk, worker="gpu@h#e") == stages.DONE
        submission.refresh_from_db()
        assert submission.status == Status.FINISHED, submission.message
    accuracies = [Result.objects.get(submission=s).accuracy for s in (first, second)]
    assert accuracies[0] is not None and accuracies[0] == accuracies[1]


def test_a_claimed_warm_sandbox_resumes_from_the_checkpoints_of_an_earlier_attempt(
    worker_sandbox, student
) -> None:
    assignment = make_assignment()
    first = _checked(assignment, student)
    assert stages.execute_train(first.pk, worker="gpu@h#t") == stages.DONE
    warm = warm_train._waiting
    assert warm is not None
    second = _checked(assignment, student)
    # An earlier attempt of `second` (its worker killed after the last epoch's checkpoint):
    # the same model, seed and data as `first`, so `first`'s checkpoints are that attempt's.
    earlier = _train_folder(second) / "work"
    shutil.copytree(_train_folder(first) / "work", earlier)
    Submission.objects.filter(pk=second.pk).update(attempts=1)

    assert stages.execute_train(second.pk, worker="gpu@h#t") == stages.DONE

    assert warm.claimed
    second.refresh_from_db()
    epochs = len(_losses(first))  # the smoke preset may stop early at its target
    assert f"Training resumed from the checkpoint of epoch {epochs}." in second.log
    assert _losses(second) == _losses(first)


def test_a_warm_sandbox_whose_job_differs_is_stopped_and_the_training_runs_cold(
    worker_sandbox, student
) -> None:
    first = _checked(make_assignment(), student)
    assert stages.execute_train(first.pk, worker="gpu@h#t") == stages.DONE
    warm = warm_train._waiting
    assert warm is not None
    # Another assignment with another memory limit: not the job the warm sandbox runs.
    other = _checked(make_assignment(slug="other", memory_limit_mb=2048), student)

    assert stages.execute_train(other.pk, worker="gpu@h#t") == stages.DONE

    assert warm.done.wait(30) and not warm.claimed
    assert not warm.folder.exists()
    assert _losses(other) == _losses(first)  # the same training, cold


def test_no_warm_sandbox_when_turned_off_or_on_another_backend(worker_sandbox, student) -> None:
    worker_sandbox.GRADER_WARM_TRAIN = False
    first = _checked(make_assignment(), student)
    assert stages.execute_train(first.pk, worker="gpu@h#t") == stages.DONE
    assert warm_train._waiting is None

    worker_sandbox.GRADER_WARM_TRAIN = True
    spec = warm_train.TrainJob(
        train_dir=Path("/nonexistent"),
        held_out_dir=None,
        sandbox=type("Docker", (), {"name": "docker"})(),
        resources=stages.resources_for(Status.TRAINING, first),
        gpu_device=None,
    )
    assert warm_train.start(jobs_root=stages.jobs_root(), spec=spec) is None


def test_folders_of_a_dead_worker_process_are_removed(worker_sandbox, tmp_path) -> None:
    dead = tmp_path / f"{warm_train.PREFIX}999999999-abcdef01"
    (dead / "next" / "train" / "work").mkdir(parents=True)
    mine = tmp_path / f"{warm_train.PREFIX}{__import__('os').getpid()}-abcdef01"
    mine.mkdir()

    remove_orphans(tmp_path, warm_train.PREFIX)

    assert not dead.exists()
    assert mine.exists()


def test_when_another_training_follows_the_warm_sandbox_starts_with_this_training(
    worker_sandbox, student, monkeypatch
) -> None:
    assignment = make_assignment()
    first, second = _checked(assignment, student), _checked(assignment, student)
    epochs_at_start: list[int] = []  # the epochs the running training had reported, per start
    start = warm_train.start

    def spy(**kwargs):
        epochs_at_start.append(EpochMetric.objects.filter(submission=running[0]).count())
        return start(**kwargs)

    monkeypatch.setattr(warm_train, "start", spy)

    # `second` waits for its training: `first`'s training starts the next sandbox before its
    # first epoch (and finds it waiting, usable, when it ends).
    running = [first]
    assert stages.execute_train(first.pk, worker="gpu@h#t") == stages.DONE
    epochs = len(_losses(first))
    assert epochs and epochs_at_start == [0, epochs]
    warm = warm_train._waiting
    assert warm is not None and not warm.done.is_set()

    # Nothing follows `second`: it claims that sandbox, and the next one starts after it.
    running[0], epochs_at_start[:] = second, []
    assert stages.execute_train(second.pk, worker="gpu@h#t") == stages.DONE
    assert warm.claimed
    assert epochs_at_start == [epochs]
    assert _losses(second) == _losses(first)
