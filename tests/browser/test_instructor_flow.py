"""An instructor creates an assignment with rules, regrades, and downloads the grades CSV."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect

from assignments.models import Assignment, AuditEntry, Submission
from grader.rules import load_ruleset
from tests.browser.conftest import log_in
from tests.support.pipeline_driver import grade_fully
from tests.support.site_fixtures import PASSWORD, make_submission, model_json

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_dir", "broker_dir"),
]


def add_rule(page, rule_id: str) -> None:
    page.select_option("#id_ruleset-add_rule", rule_id)
    page.locator("#add-rule").click()
    expect(page.locator(".rules-editor .message")).to_contain_text(f"(`{rule_id}`) added")


def test_instructor_creates_regrades_and_exports(page, screenshot, instructor, student, course):
    log_in(page, "prof", PASSWORD)
    page.goto("/manage/")
    screenshot(page, "dashboard")
    page.locator(f"#new-assignment-{course.slug}").click()

    page.fill("#id_slug", "hw2")
    page.fill("#id_title", "Homework 2")
    page.fill("#id_description", "Use **separable** convolutions.")
    page.select_option("#id_dataset", "synthetic")
    # One row per rule, its inputs typed from the rule registry; the page keeps what was typed.
    add_rule(page, "max_params")
    page.fill("#id_rules-0-limit", "50000")
    add_rule(page, "forbidden_layers")
    page.fill("#id_rules-1-layers", "MaxPoolin2D")
    add_rule(page, "max_dropout")
    expect(page.locator("#id_rules-0-limit")).to_have_value("50000")
    # Picking another rule id shows that rule's parameters at once (progressive enhancement).
    page.select_option("#id_rules-2-rule", "min_receptive_field")
    expect(page.locator("#id_rules-2-end_point")).to_be_visible()
    page.fill("#id_rules-2-limit", "3")
    page.get_by_role("button", name="Save").click()
    # The error names the rule and the parameter, next to the input and above the rows.
    expect(page.locator("#rules-errors")).to_contain_text(
        "Rule 2 (`forbidden_layers`): `layers` must be Keras layer class names; `MaxPoolin2D` is "
        "not a Keras layer class (did you mean `MaxPooling2D`?)"
    )
    expect(page.locator("#rule-2 .error")).to_contain_text("did you mean `MaxPooling2D`?")
    expect(page.locator("#id_rules-1-layers")).to_have_value("MaxPoolin2D")
    expect(page.locator("#id_rules-0-limit")).to_have_value("50000")
    expect(page.locator("#id_title")).to_have_value("Homework 2")
    screenshot(page, "assignment-form-error")
    assert not Assignment.objects.filter(slug="hw2").exists()
    page.fill("#id_rules-1-layers", "MaxPooling2D")
    page.locator("#id_rules-1-layers").press("Enter")  # Enter saves, like the Save button
    expect(page.locator(".message.success")).to_contain_text("Assignment `hw2` created.")
    assignment = Assignment.objects.get(slug="hw2")
    assert assignment.rules_version == 1
    stored = load_ruleset(assignment.rules_yaml)
    assert [(r.id, dict(r.params)) for r in stored.rules] == [
        ("max_params", {"limit": 50000, "count": "total"}),
        ("forbidden_layers", {"layers": ["MaxPooling2D"]}),
        ("min_receptive_field", {"limit": 3, "end_point": None}),
    ]

    # The rules download of the edit page is the stored rule set.
    page.goto("/manage/a/hw2/edit/")
    screenshot(page, "assignment-form-rules")
    with page.expect_download() as download_info:
        page.locator("#export-rules").click()
    with open(download_info.value.path(), encoding="utf-8") as handle:
        assert load_ruleset(handle.read()) == stored
    page.goto("/manage/a/hw2/")

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
    expect(page.locator(".message.success")).to_contain_text("1 submission queued for regrading")
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
