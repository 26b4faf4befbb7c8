"""The site's pipeline and the local grader (`grade`, `grade_batch`) reach the same outcome.

The site runs the real stage functions (`workers.pipeline.stages.execute_*`, what the Celery
tasks call) against the database; the local grader runs `workers.pipeline.local.grade_file` on
the same file and assignment. Status, reason, message and score must be equal, whichever stage
ends the grading. The check stage refuses a model that does not fit the dataset before any rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from assignments.models import Result, Submission
from grader.grading.plan import GradingPlan
from grader.presets import preset_text
from tests.workers.conftest import (
    FIXTURE_MODELS,
    make_assignment,
    make_submission,
    smoke_rules_yaml,
)
from workers.pipeline.local import grade_file

pytestmark = [pytest.mark.django_db, pytest.mark.bwrap]

WORKER = "site-vs-local#1"


def _site_outcome(submission: Submission) -> dict[str, Any]:
    """Run the site's stages in order until the grading ends without a sandbox, then read it."""
    from workers.pipeline import stages

    stages.execute_build(submission.pk, worker=WORKER)
    stages.execute_check(submission.pk, worker=WORKER)
    submission.refresh_from_db()
    if submission.status == Submission.Status.CHECKING:
        stages.execute_train(submission.pk, worker=WORKER)
    submission.refresh_from_db()
    if submission.status == Submission.Status.TRAINING and not submission.worker:
        stages.execute_evaluate(submission.pk, worker=WORKER)
        submission.refresh_from_db()
    if submission.status == Submission.Status.EVALUATING and not submission.worker:
        stages.execute_finalize(submission.pk)
        submission.refresh_from_db()
    result = Result.objects.filter(submission=submission).first()
    return {
        "status": submission.status,
        "reason": submission.reason or None,
        "message": submission.message,
        "score": result.score if result is not None else None,
    }


def _local_outcome(path: Path, assignment: Any) -> dict[str, Any]:
    report = grade_file(path, GradingPlan.from_assignment(assignment), sandbox_name="bwrap")
    data = report.to_dict()
    return {key: data[key] for key in ("status", "reason", "message", "score")}


def _model(tmp_path: Path, fixture: str, name: str, *, units: int | None = None) -> Path:
    config = json.loads((FIXTURE_MODELS / f"{fixture}.json").read_text())
    if units is not None:
        dense = [c for c in config["config"]["layers"] if c["class_name"] == "Dense"][-1]
        dense["config"]["units"] = units
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


def _both(tmp_path, student, path: Path, **assignment_fields: Any):
    assignment = make_assignment(**assignment_fields)
    site = _site_outcome(make_submission(assignment, student, source=path))
    local = _local_outcome(path, assignment)
    return site, local


def test_a_wrong_class_count_is_invalid_at_check_with_no_score_on_both(
    tmp_path, student, grading_settings, bwrap_available
):
    path = _model(tmp_path, "smoke_separable", "wc2.json", units=10)

    site, local = _both(tmp_path, student, path)

    assert site == local
    assert (site["status"], site["reason"], site["score"]) == ("failed", "invalid_submission", None)
    assert site["message"] == (
        "Model output shape is (10,). Expected (4,), one score for each of the 4 classes of "
        "dataset `synthetic`."
    )


def test_a_wrong_input_shape_is_refused_before_the_rules_it_also_breaks(
    tmp_path, student, grading_settings, bwrap_available
):
    # 32x32 input and 275,018 parameters: breaks `max_params` of the smoke rules too.
    path = _model(tmp_path, "breaks_too_many_params", "big.json")

    site, local = _both(tmp_path, student, path, stop_on_static_failure=True)

    assert site == local
    assert (site["status"], site["reason"], site["score"]) == ("failed", "invalid_submission", None)
    assert site["message"] == (
        "Model input shape is (32, 32, 3). Expected (16, 16, 3), the images of dataset `synthetic`."
    )


def test_missing_data_waits_on_the_site_is_an_error_locally_and_scores_nothing_on_both(
    tmp_path, student, grading_settings, bwrap_available
):
    # Fits CIFAR-10, fails `max_dropout`, goes on (no stop) and meets a dataset not prepared.
    # The site keeps the submission waiting for the data (the student is told without a host
    # path); the local grader's user is the operator, who gets the path and the command.
    path = _model(tmp_path, "breaks_dropout_025", "dropout.json")

    site, local = _both(
        tmp_path,
        student,
        path,
        slug="cifar10-separable",
        dataset="cifar10",
        rules_yaml=preset_text("cifar10-separable"),
        max_epochs=50,
        stop_on_static_failure=False,
    )

    assert (site["status"], site["reason"], site["score"]) == ("waiting_data", None, None)
    assert site["message"].startswith("Training is not available yet")
    assert "fetch_dataset" not in site["message"]
    assert (local["status"], local["reason"], local["score"]) == ("error", "infrastructure", None)
    assert "fetch_dataset cifar10" in local["message"]


def test_a_static_failure_that_stops_keeps_the_same_static_score_on_both(
    tmp_path, student, grading_settings, bwrap_available
):
    path = _model(tmp_path, "breaks_dropout_025", "dropout.json")

    site, local = _both(
        tmp_path,
        student,
        path,
        slug="cifar10-separable",
        dataset="cifar10",
        rules_yaml=preset_text("cifar10-separable"),
        max_epochs=50,
        stop_on_static_failure=True,
    )

    assert site == local
    assert (site["status"], site["reason"]) == ("failed", "rules")
    assert site["score"] is not None and 0 < site["score"] < 100


@pytest.mark.tf
@pytest.mark.timeout(600)
@pytest.mark.django_db(transaction=True)  # the training's heartbeat thread reads the submission
def test_a_rule_failed_after_training_is_failed_rules_with_its_message_on_both(
    tmp_path, student, grading_settings, bwrap_available
):
    # Passes every static rule, trains 2 epochs at a learning rate too small to learn anything:
    # `min_val_accuracy` (60 % within 5 epochs) fails once training is over.
    path = _model(tmp_path, "smoke_separable", "slow.json")
    training = {
        "optimizer": "adam",
        "learning_rate": 1e-6,
        "schedule": "constant",
        "batch_size": 64,
        "epochs": 2,
    }

    site, local = _both(tmp_path, student, path, rules_yaml=smoke_rules_yaml(training=training))

    assert site == local
    assert (site["status"], site["reason"]) == ("failed", "rules")
    assert site["message"].startswith("1 rule failed: The best validation accuracy within 5 ")
    assert "Expected at least 60.00%." in site["message"]
    assert site["score"] is not None and 0 < site["score"] < 100
    result = Result.objects.get()  # the site's only submission
    assert result.passed is False
    assert {r["id"] for r in result.rules if r["passed"] is False} == {"min_val_accuracy"}


def test_grade_batch_writes_no_score_for_a_model_the_site_gives_none(
    tmp_path, student, grading_settings, bwrap_available
):
    folder = tmp_path / "batch"
    folder.mkdir()
    _model(folder, "smoke_separable", "wc2.json", units=10)
    make_assignment()
    out = tmp_path / "results.csv"

    with pytest.raises(SystemExit):
        call_command("grade_batch", str(folder), "--assignment", "smoke", "--out", str(out))

    import csv

    [row] = list(csv.DictReader(out.open()))
    assert (row["status"], row["reason"], row["score"]) == ("failed", "invalid_submission", "")


def test_an_unknown_extension_reads_as_on_the_site(tmp_path, grading_settings, bwrap_available):
    from assignments.services.submissions import InvalidUpload, validate_upload

    path = tmp_path / "noext"
    path.write_text("{}")
    with pytest.raises(InvalidUpload) as site:
        validate_upload(filename="noext", data=b"{}")

    local = grade_file(path, GradingPlan.from_preset("smoke"), sandbox_name="bwrap")

    assert (local.status, local.reason) == ("failed", "invalid_submission")
    assert local.message == site.value.message
    assert "has extension `(none)`" in local.message
