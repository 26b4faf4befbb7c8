"""Results at a glance in Chromium (issue 13, part 2): the live page replaces its flash message
as the stage changes and announces the status; the result shows the confusion matrix as a heat
map with class names; a build error reads line by line; a regrade keeps the previous result."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from assignments.models import Result, Submission
from grader.datasets.synthetic import CLASS_NAMES
from tests.assignments.test_results_at_a_glance import RUNNER_MESSAGE, STUDENT_MODULE
from tests.browser.conftest import log_in
from tests.support.pipeline_driver import advance, grade_fully
from tests.support.site_fixtures import PASSWORD, make_submission, model_json

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_dir", "broker_dir"),
]


def test_the_live_page_replaces_its_flash_and_shows_the_heat_map(
    page, screenshot, student, assignment, tmp_path
):
    log_in(page, "alice", PASSWORD)
    page.goto(f"/a/{assignment.slug}/")
    model = tmp_path / "net.json"
    model.write_bytes(model_json())
    page.set_input_files("input[type=file]", str(model))
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"/s/\d+/$"))
    submission = Submission.objects.get()
    expect(page.locator(".messages")).to_contain_text("is queued")

    advance(submission.pk)  # built: no longer queued, so the flash saying so goes
    expect(page.locator(".messages")).to_have_count(0)
    expect(page.locator("#live-announcer")).to_have_text(f"Submission #{submission.pk:,}: Building")
    grade_fully(submission.pk, accuracy=0.75)
    matrix = [[9, 1, 0, 0], [0, 8, 2, 0], [0, 0, 10, 0], [1, 0, 0, 9]]
    Result.objects.filter(submission=submission).update(
        confusion_matrix=matrix, per_class_accuracy=[0.9, 0.8, 1.0, 0.9]
    )
    page.reload()
    heat = page.locator("svg.confusion-matrix")
    expect(heat).to_be_visible()
    for name in CLASS_NAMES:
        expect(heat.locator(".predicted-label", has_text=name)).to_have_count(1)
        expect(heat.locator(".true-label", has_text=name)).to_have_count(1)
    expect(page.locator("table.per-class-accuracy")).to_contain_text("checkerboard")
    page.get_by_text("Show the confusion matrix as a table").click()
    expect(page.locator("table.confusion-table")).to_be_visible()
    page.locator("#confusion-matrix").scroll_into_view_if_needed()
    screenshot(page, "result-confusion-matrix")


def test_a_build_error_and_a_pending_regrade_read_at_a_glance(
    page, screenshot, student, instructor, assignment
):
    failed = make_submission(
        assignment,
        student,
        status="failed",
        reason="build_error",
        with_result=False,
        data=STUDENT_MODULE.encode(),
    )
    Submission.objects.filter(pk=failed.pk).update(
        original_name="my_net.py", file_format="py", message=RUNNER_MESSAGE
    )
    graded = make_submission(assignment, student, accuracy=0.8125, params=1234)
    log_in(page, "alice", PASSWORD)

    page.goto(f"/s/{failed.pk}/")
    expect(page.locator("#error-details mark")).to_have_text(
        "    y = layers.SeperableConv2D(8, 3)(x)"
    )
    expect(page.locator("#failing-source figcaption")).to_have_text("my_net.py, line 6")
    expect(page.locator("#error-hint")).to_have_text("Did you mean keras.layers.SeparableConv2D?")
    screenshot(page, "build-error")

    from assignments.services.grading import regrade_submission

    regrade_submission(submission_id=graded.pk, actor=instructor)
    page.goto(f"/s/{graded.pk}/")
    expect(page.locator("#previous-result")).to_contain_text("81.25 %")
    expect(page.locator("#result-summary")).not_to_contain_text("( trainable)")
    screenshot(page, "regrade-pending")
