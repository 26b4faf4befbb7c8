"""Copied models in Chromium (issue 13, part 7): the instructor finds the group of students who
handed in the same network under other names, and compares two of them side by side."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.assignments.test_copies import class_of_five  # noqa: F401 - a fixture
from tests.browser.conftest import log_in
from tests.support.site_fixtures import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_dir", "broker_dir"),
]


def test_the_instructor_finds_copies_and_compares_them(
    page,
    screenshot,
    instructor,
    assignment,
    class_of_five,  # noqa: F811
):
    log_in(page, "prof", PASSWORD)
    page.goto(f"/manage/a/{assignment.slug}/")
    page.locator("#similar-models").click()
    identical = page.locator(".copy-group.identical")
    expect(identical).to_have_count(1)
    expect(identical).to_contain_text("alice")
    expect(identical).to_contain_text("bob")
    expect(page.locator(".copy-group.near")).to_contain_text("carol")
    expect(page.locator("main")).not_to_contain_text("dave")
    screenshot(page, "similar-models")

    page.locator(".copy-group.near .pairs a").first.click()
    expect(page.locator("#diff-summary")).to_contain_text("1 edit")
    changed = page.locator("#layer-diff tr.diff-change")
    expect(changed).to_have_count(1)
    expect(changed).to_contain_text("rate 0.05")
    screenshot(page, "similar-models-side-by-side")
