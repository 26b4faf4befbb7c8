"""An instructor creates an assignment with rules, regrades, and downloads the grades CSV."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect

from assignments.models import Assignment, AuditEntry, Submission
from tests.assignments.pipeline_driver import grade_fully
from tests.assignments.site_fixtures import PASSWORD, make_submission, model_json
from tests.browser.conftest import log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_dir", "broker_dir"),
]

RULES = """rules:
  - id: max_params
    limit: 50000
  - id: min_receptive_field
    limit: 3
"""


def test_instructor_creates_regrades_and_exports(page, screenshot, instructor, student, course):
    log_in(page, "prof", PASSWORD)
    page.goto("/manage/")
    screenshot(page, "dashboard")
    page.locator(f"#new-assignment-{course.slug}").click()

    page.fill("#id_slug", "hw2")
    page.fill("#id_title", "Homework 2")
    page.fill("#id_description", "Use **separable** convolutions.")
    page.select_option("#id_dataset", "synthetic")
    page.fill("#id_rules_yaml", "rules:\n  - id: max_params\n    limit: zero\n")
    page.get_by_role("button", name="Save").click()
    # The rule engine's own message, next to the field.
    expect(page.locator(".has-error")).to_contain_text("max_params")
    screenshot(page, "assignment-form-error")
    page.fill("#id_rules_yaml", RULES)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".message.success")).to_contain_text("Assignment `hw2` created.")
    assignment = Assignment.objects.get(slug="hw2")
    assert assignment.rules_version == 1

    # A student's submission, graded by the state machine, then regraded by the instructor.
    submission = make_submission(
        assignment, student, status="queued", with_result=False, data=model_json()
    )
    assert grade_fully(submission.pk, accuracy=0.7).status == "finished"
    page.reload()
    expect(page.locator("table.submissions")).to_contain_text("alice")
    screenshot(page, "submissions-table")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#regrade-all").click()
    expect(page.locator(".message.success")).to_contain_text("1 submissions queued for regrading")
    assert Submission.objects.get(pk=submission.pk).status == "queued"
    assert AuditEntry.objects.filter(action="regrade_assignment").exists()
    grade_fully(submission.pk, accuracy=0.75)

    with page.expect_download() as download_info:
        page.locator("#grades-csv").click()
    download = download_info.value
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    assert [r["username"] for r in rows] == ["alice"]
    assert rows[0]["accuracy"] == "0.75" and rows[0]["rule:max_params"] == "yes"

    page.goto("/manage/a/hw2/stats/")
    expect(page.locator("svg.accuracy-histogram")).to_be_visible()
    screenshot(page, "statistics")
