"""End to end, real bubblewrap sandboxes: a network that differs from its analysis never trains.

The analysis is made to disagree with Keras (one stored number changed, as a reader that
misread the config would), then the site's stages (`workers.pipeline.stages`, what the Celery
tasks run) and the local grader (`grade_file`, the `grade` command's engine) run the real
runner. Both must end `failed/invalid_submission` before any epoch is recorded, tell the student
in a plain sentence, and keep the differences for instructors only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assignments.models import EpochMetric, Result, Submission
from grader.grading.plan import GradingPlan
from tests.workers.conftest import FIXTURE_MODELS, make_assignment, make_submission
from workers.pipeline.local import grade_file

pytestmark = [pytest.mark.tf, pytest.mark.bwrap]

WORKER = "built-model#1"
MODEL = FIXTURE_MODELS / "smoke_separable.json"
STUDENT_SENTENCE = (
    "Your model could not be graded: the network Keras builds from it differs from the one the "
    "grader analysed (layer `{layer}`)."
)


def _misread(checks: dict[str, Any]) -> str:
    """Make the stored analysis count one more parameter in its first weighted layer."""
    row = next(r for r in checks["layers"] if r["params"])
    row["params"] += 1
    checks["params"]["total"] += 1
    return str(row["name"])


@pytest.mark.timeout(300)
def test_the_local_grader_refuses_before_training(
    tmp_path, grading_settings, bwrap_available, monkeypatch
):
    import grader.report

    real = grader.report.check_model
    misread: list[str] = []

    def misreading_check_model(*args: Any, **kwargs: Any) -> dict[str, Any]:
        checks = real(*args, **kwargs)
        misread.append(_misread(checks))
        return checks

    monkeypatch.setattr(grader.report, "check_model", misreading_check_model)
    events: list[str] = []

    report = grade_file(
        MODEL,
        GradingPlan.from_preset("smoke"),
        sandbox_name="bwrap",
        on_event=lambda kind, data: events.append(kind),
    )

    data = report.to_dict()
    assert (data["status"], data["reason"]) == ("failed", "invalid_submission"), data
    [layer] = misread
    assert data["message"].startswith(STUDENT_SENTENCE.format(layer=layer))
    assert data["training"] is None and "epoch" not in events
    assert data["score"] is None
    differences = data["checks"]["built_model"]["differences"]
    assert differences == [
        f"Layer `{layer}` (SeparableConv2D): the analysis counts "
        f"{report.checks['layers'][1]['params']:,} parameters, Keras built "
        f"{report.checks['layers'][1]['params'] - 1:,} parameters.",
        f"Model: the analysis counts {data['checks']['params']['total']:,} parameters in total, "
        f"Keras built {data['checks']['params']['total'] - 1:,}.",
    ]


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)  # the training's heartbeat thread reads the submission
def test_the_site_refuses_before_training_and_shows_the_details_to_instructors_only(
    tmp_path, student, instructor, grading_settings, bwrap_available, client
):
    from assignments.models import Enrollment
    from workers.pipeline import stages

    assignment = make_assignment()
    Enrollment.objects.create(
        course=assignment.course, user=instructor, role=Enrollment.Role.INSTRUCTOR
    )
    submission = make_submission(assignment, student, source=Path(MODEL))
    stages.execute_build(submission.pk, worker=WORKER)
    stages.execute_check(submission.pk, worker=WORKER)
    result = Result.objects.get(submission=submission)
    layer = _misread(result.checks)
    result.save(update_fields=["checks"])

    assert stages.execute_train(submission.pk, worker=WORKER) == stages.FAILED

    submission.refresh_from_db()
    assert (submission.status, submission.reason) == ("failed", "invalid_submission")
    assert submission.message.startswith(STUDENT_SENTENCE.format(layer=layer))
    assert not EpochMetric.objects.filter(submission=submission).exists()
    result.refresh_from_db()
    assert result.epochs_run is None and result.score is None
    built = result.checks["built_model"]
    assert built["matches"] is False and built["stage"] == "train"
    assert any(d.startswith(f"Layer `{layer}` (SeparableConv2D)") for d in built["differences"])
    assert "absent" not in submission.log and "Keras built" not in submission.log

    def seen_by(user: Any) -> tuple[dict[str, Any], str]:
        client.force_login(user)
        api = client.get(f"/api/v1/submissions/{submission.pk}/").json()
        page = client.get(f"/s/{submission.pk}/").content.decode()
        return api, page

    api, page = seen_by(student)
    assert api["message"] == submission.message
    assert "built_model" not in api["result"]["checks"]
    assert "params" in api["result"]["checks"]  # the rest of the analysis stays visible
    assert "Keras built" not in json.dumps(api) and "Keras built" not in page
    assert "Your model could not be graded" in page

    api, page = seen_by(instructor)
    assert api["result"]["checks"]["built_model"] == built
    assert 'id="built-model-differences"' in page
    assert f"<code>{layer}</code> (SeparableConv2D): the analysis counts" in page
    assert submission.status == Submission.Status.FAILED
