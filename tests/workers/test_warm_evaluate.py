"""The warm evaluate sandbox: started while its submission trains, claimed by its evaluation.

The stages run as a worker process runs them (`workers.pipeline.stages`, the worker's own
sandbox: real bubblewrap). A warm evaluate sandbox must run exactly the cold job, for its own
submission only, and be gone once it cannot be claimed (settings changed, cancelled).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assignments.models import Result, Submission
from assignments.services import grading
from tests.workers.conftest import SMOKE_MODULE, make_assignment, make_submission
from workers.pipeline import stages, warm_evaluate

pytestmark = [
    pytest.mark.services,
    pytest.mark.bwrap,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]

Status = Submission.Status


@pytest.fixture
def worker_sandbox(bwrap_available, grading_settings, redis_broker) -> Iterator[object]:
    grading_settings.GRADER_SANDBOX = "bwrap"
    grading_settings.GRADER_WARM_BUILD = False
    grading_settings.GRADER_WARM_EVALUATE = True
    warm_evaluate.stop()
    yield grading_settings
    warm_evaluate.stop()


def _trained(student) -> tuple[Submission, warm_evaluate.WarmEvaluate]:
    submission = make_submission(make_assignment(), student, source=SMOKE_MODULE)
    assert stages.execute_build(submission.pk, worker="cpu@h#b") == stages.DONE
    assert stages.execute_check(submission.pk, worker="cpu@h#c") == stages.DONE
    assert stages.execute_train(submission.pk, worker="gpu@h#t") == stages.DONE
    warm = warm_evaluate._waiting
    assert warm is not None and not warm.done.is_set()  # started by the train stage, waiting
    submission.refresh_from_db()
    assert warm.key == stages.grading_key(submission)
    return submission, warm


def test_the_evaluation_claims_its_warm_sandbox_and_is_finalized_at_once(
    worker_sandbox, student
) -> None:
    submission, warm = _trained(student)

    assert stages.execute_evaluate(submission.pk, worker="gpu@h#e") == stages.DONE

    assert warm.claimed and warm.done.is_set()
    assert warm_evaluate._waiting is None
    submission.refresh_from_db()
    # Finalized by the evaluate stage itself (the finalize task, still sent, finds it done).
    assert submission.status == Status.FINISHED, submission.message
    result = Result.objects.get(submission=submission)
    assert result.accuracy is not None and 0.0 <= result.accuracy <= 1.0
    assert (result.checks or {}).get("validation", {}).get("accuracy") is not None
    assert stages.execute_finalize(submission.pk) == stages.SKIPPED


def test_a_warm_sandbox_whose_job_changed_is_stopped_and_the_stage_runs_cold(
    worker_sandbox, student
) -> None:
    submission, warm = _trained(student)
    # Its limits changed between the stages: not the job a cold evaluation runs now.
    submission.assignment.memory_limit_mb = 2048
    submission.assignment.save()

    assert stages.execute_evaluate(submission.pk, worker="gpu@h#e") == stages.DONE

    assert not warm.claimed and warm.done.is_set()
    submission.refresh_from_db()
    assert submission.status == Status.FINISHED, submission.message


def test_a_warm_sandbox_goes_when_its_submission_is_cancelled_between_the_stages(
    worker_sandbox, student, instructor, monkeypatch
) -> None:
    monkeypatch.setattr(warm_evaluate, "CLAIM_SECONDS", 2.0)
    submission, warm = _trained(student)

    grading.cancel_submission(submission_id=submission.pk, actor=instructor)

    assert stages.execute_evaluate(submission.pk, worker="gpu@h#e") == stages.SKIPPED
    assert warm.done.wait(30)  # not claimed in time: stopped
    assert not warm.claimed
    assert warm_evaluate._waiting is None


def test_a_failed_training_stops_its_warm_sandbox(worker_sandbox, student, monkeypatch) -> None:
    submission = make_submission(make_assignment(), student, source=SMOKE_MODULE)
    assert stages.execute_build(submission.pk, worker="cpu@h#b") == stages.DONE
    assert stages.execute_check(submission.pk, worker="cpu@h#c") == stages.DONE
    started = []
    real_start = warm_evaluate.start
    monkeypatch.setattr(
        warm_evaluate, "start", lambda **arguments: started.append(real_start(**arguments))
    )
    # A config Keras refuses: the train stage ends in a verdict.
    Submission.objects.filter(pk=submission.pk).update(model_config={"class_name": "NotAModel"})

    assert stages.execute_train(submission.pk, worker="gpu@h#t") != stages.DONE

    assert started and started[0] is not None
    assert started[0].done.is_set() and not started[0].claimed
    assert warm_evaluate._waiting is None
