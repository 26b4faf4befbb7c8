"""Drives a submission through the real grading state machine (`assignments.services.grading`)
one stage at a time, from the test's thread, with the verdicts the grader computes.

No GPU and no sandbox: the model is never trained; the build stage's output is the uploaded
JSON config, the check stage runs `grader.report.check_model` for real, the training stage
reports made-up epochs and the evaluation a given accuracy. Pages and the API read exactly
what the real workers would have written.
"""

from __future__ import annotations

import json

from assignments.models import Submission
from assignments.services import grading

WORKER = "test-driver#1"


def advance(submission_id: int, *, accuracy: float = 0.75, epochs: int = 3) -> str:
    """Run the next stage of a waiting submission; returns its new status."""
    from grader.report import check_model
    from grader.rules import RuleResult, load_ruleset, overall_passed, score

    submission = Submission.objects.select_related("assignment").get(pk=submission_id)
    assignment = submission.assignment
    status = submission.status
    assert submission.worker == "", f"submission #{submission_id} is owned by {submission.worker}"
    if status == Submission.Status.QUEUED:
        assert grading.claim_stage(
            submission_id=submission_id, from_status=status, to_status="building", worker=WORKER
        )
        with submission.file.open("rb") as handle:
            config = json.loads(handle.read())
        grading.complete_build(
            submission_id=submission_id, worker=WORKER, model_config=config,
            training_config=None, log="built <model> from JSON\n",
        )  # fmt: skip
    elif status == Submission.Status.BUILDING:
        assert grading.claim_stage(
            submission_id=submission_id, from_status=status, to_status="checking", worker=WORKER
        )
        report = check_model(submission.model_config, load_ruleset(assignment.rules_yaml))
        results = [RuleResult.from_dict(r) for r in report["rules"]]
        failed = any(r.passed is False for r in results)
        grading.complete_check(
            submission_id=submission_id, worker=WORKER, checks=report, rules=report["rules"],
            training_config=None, score=score(results),
            stop=failed and assignment.stop_on_static_failure,
            message="A rule failed." if failed else "",
        )  # fmt: skip
    elif status == Submission.Status.CHECKING:
        assert grading.claim_stage(
            submission_id=submission_id, from_status=status, to_status="training", worker=WORKER
        )
        for epoch in range(1, epochs + 1):
            grading.record_epoch(
                submission_id=submission_id, worker=WORKER, epoch=epoch,
                metrics={"loss": 1.5 / epoch, "accuracy": accuracy * epoch / epochs,
                         "val_loss": 1.6 / epoch, "val_accuracy": accuracy * epoch / (epochs + 0.5),
                         "learning_rate": 0.001, "seconds": 2.0},
            )  # fmt: skip
        grading.complete_training(
            submission_id=submission_id, worker=WORKER, epochs_run=epochs, training_seconds=6.0,
            log="epoch 1/3 ... epoch 3/3\n",
        )  # fmt: skip
    elif status == Submission.Status.TRAINING:
        assert grading.claim_stage(
            submission_id=submission_id, from_status=status, to_status="evaluating", worker=WORKER
        )
        grading.complete_evaluation(
            submission_id=submission_id, worker=WORKER, accuracy=accuracy, loss=0.5,
            per_class_accuracy=[accuracy] * 4, confusion_matrix=[[1, 0], [0, 1]],
        )  # fmt: skip
    elif status == Submission.Status.EVALUATING:
        rules = submission.result.rules
        results = [RuleResult.from_dict(r) for r in rules]
        grading.finalize(
            submission_id=submission_id, rules=rules, passed=overall_passed(results),
            score=score(results),
        )  # fmt: skip
    else:
        raise AssertionError(f"submission #{submission_id} is {status}: nothing to advance")
    return Submission.objects.get(pk=submission_id).status


def grade_fully(submission_id: int, **kwargs) -> Submission:
    """Advance until the submission reaches a terminal status."""
    for _ in range(6):
        if advance(submission_id, **kwargs) in Submission.TERMINAL_STATUSES:
            break
    return Submission.objects.get(pk=submission_id)
