"""A student logs in, uploads a model, watches the stages advance live, reads the result, and
finds the entry on the leaderboard. The grading advances through the real state machine from
the test thread (no GPU here); the page updates itself by polling, never reloaded by the test.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from assignments.models import Submission
from tests.browser.conftest import log_in
from tests.support.pipeline_driver import advance
from tests.support.site_fixtures import PASSWORD, model_json

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_dir", "broker_dir"),
]

# The state after each call of the pipeline driver, and the stage shown as current.
STEPS = [
    ("building", "checking"),  # built: waiting for the check
    ("checking", "training"),
    ("training", "evaluating"),
    ("evaluating", "finished"),
]


# The production policy: if the live updates work under it, the page runs no inline script.
PRODUCTION_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)


@pytest.fixture(autouse=True)
def production_csp(settings):
    settings.CONTENT_SECURITY_POLICY = PRODUCTION_CSP


@pytest.fixture
def csp_violations(page):
    """Console messages reporting a Content-Security-Policy violation."""
    seen: list[str] = []
    page.on(
        "console",
        lambda msg: seen.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return seen


def test_student_uploads_and_watches_the_grading(
    page, screenshot, student, assignment, tmp_path, csp_violations
):
    log_in(page, "alice", PASSWORD)
    expect(page.get_by_role("link", name="Homework 1")).to_be_visible()
    screenshot(page, "home")
    page.get_by_role("link", name="Homework 1").click()
    expect(page.locator("#rules-plain")).to_contain_text("At most 20,000 parameters")
    screenshot(page, "assignment")

    model = tmp_path / "my_net.json"
    model.write_bytes(model_json())
    page.set_input_files("input[type=file]", str(model))
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"/s/\d+/$"))
    submission = Submission.objects.get()
    expect(page.locator(".stage.current")).to_have_attribute("data-stage", "queued")
    expect(page.locator("#queue-position")).to_contain_text("1")
    screenshot(page, "submission-queued")

    advance(submission.pk)  # build
    for _ in STEPS:
        status = advance(submission.pk, accuracy=0.8125)
        stage = page.locator(f'[data-stage="{status}"]')
        # The page polls every 2 s: each stage shows up without a reload.
        expect(stage).to_have_class(re.compile("done" if status == "finished" else "current"))
        if status == "training":
            expect(page.locator("svg.epoch-loss")).to_be_visible()
            screenshot(page, "submission-training")
        if status == "finished":
            break
    expect(page.locator("#test-accuracy")).to_have_text("81.25 %")
    expect(page.locator("#rule-report")).to_contain_text("max_params")
    expect(page.locator("#rule-report .mark.pass").first).to_be_visible()
    expect(page.locator("svg.rf-growth")).to_be_visible()
    expect(page.locator("svg.epoch-accuracy")).to_be_visible()
    expect(page.locator("#layers")).to_contain_text("Conv2D")
    expect(page.locator("#live")).to_have_attribute("data-active", "false")
    screenshot(page, "submission-finished")

    page.get_by_role("link", name="leaderboard").first.click()
    expect(page.locator("#ranking-rule")).to_contain_text("fewer parameters")
    row = page.locator("table.leaderboard tr.me")
    expect(row).to_contain_text("Alice A.")
    expect(row).to_contain_text("81.25 %")
    screenshot(page, "leaderboard")
    assert csp_violations == []


def test_api_docs_render_from_local_assets_under_the_csp(page, student, csp_violations):
    log_in(page, "alice", PASSWORD)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .information-container")).to_contain_text("CNN Grader API")
    assert all(url.startswith(page.url.split("/api/")[0]) for url in requests), requests
    assert csp_violations == []


def test_a_rejected_upload_is_explained(page, student, assignment, tmp_path):
    log_in(page, "alice", PASSWORD)
    page.goto(f"/a/{assignment.slug}/")
    bad = tmp_path / "net.py"
    bad.write_text("import keras\n")
    page.set_input_files("input[type=file]", str(bad))
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#upload-errors")).to_contain_text(
        "defines no top-level function `build_model`"
    )
