"""Accessibility in Chromium (issue 13, part 5): the keyboard reaches the content first through
the skip link, inputs are found by their labels, the live status region speaks."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.support.pipeline_driver import advance
from tests.support.site_fixtures import PASSWORD, make_submission, model_json

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_dir", "broker_dir"),
]


def test_the_keyboard_skips_to_the_content_and_labels_name_the_inputs(
    page, screenshot, student, assignment
):
    log_in(page, "alice", PASSWORD)
    page.goto(f"/a/{assignment.slug}/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    screenshot(page, "skip-link")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    expect(page.get_by_label("Model file")).to_have_attribute("type", "file")


def test_the_instructor_finds_filters_and_the_yaml_box_by_label(page, instructor, assignment):
    log_in(page, "prof", PASSWORD)
    page.goto(f"/manage/a/{assignment.slug}/")
    page.get_by_label("Status").select_option("finished")
    page.get_by_label("Student").fill("alice")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(
        f"/manage/a/{assignment.slug}/?status=finished&reason=&student=alice&sort=newest"
    )
    page.goto(f"/manage/a/{assignment.slug}/edit/")
    expect(page.get_by_label("or paste YAML")).to_be_editable()
    expect(page.get_by_label("Model and training defaults (YAML)")).to_be_attached()


def test_the_status_region_announces_a_new_stage(page, student, assignment):
    submission = make_submission(
        assignment, student, status="queued", with_result=False, data=model_json()
    )
    log_in(page, "alice", PASSWORD)
    page.goto(f"/s/{submission.pk}/")
    region = page.get_by_role("status")
    expect(region).to_have_text("")
    advance(submission.pk)
    expect(region).to_have_text(f"Submission #{submission.pk:,}: Building")
