"""A CIFAR-10 upload on a machine without CIFAR-10 (issue 13, part 1), in Chromium.

The student uploads the reference model of the shipped `cifar10-separable` assignment; the
worker's stages run for real from the test thread (build, check, then train, which finds no
dataset). The page shows the static rule results and says, in words meant for a student, that
training waits; the instructor's dashboard shows the missing dataset with the command that
installs it.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from assignments.models import Assignment, Submission
from grader.presets import load_preset, preset_text
from tests.browser.conftest import log_in
from tests.support.site_fixtures import PASSWORD
from tests.workers.conftest import FIXTURE_MODELS
from workers.pipeline import stages

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_dir", "broker_dir"),
]


@pytest.fixture
def offline_machine(settings, tmp_path):
    """No dataset anywhere the workers look: CIFAR-10 was never downloaded."""
    settings.GRADER_DATA_DIR = tmp_path / "data"
    settings.GRADER_DATA_DIR.mkdir()
    settings.GRADER_JOBS_DIR = tmp_path / "jobs"
    return settings.GRADER_DATA_DIR


@pytest.fixture
def cifar_assignment(course) -> Assignment:
    preset = load_preset("cifar10-separable")
    return Assignment.objects.create(
        course=course,
        slug="cifar10-separable",
        title=preset.metadata["title"],
        description=preset.metadata["description"],
        dataset="cifar10",
        rules_yaml=preset_text("cifar10-separable"),
        max_epochs=50,
        time_limit_seconds=3600,
    )


def test_a_cifar10_upload_without_the_dataset_shows_the_static_rules(
    page, screenshot, student, instructor, cifar_assignment, offline_machine
):
    log_in(page, "alice", PASSWORD)
    page.goto(f"/a/{cifar_assignment.slug}/")
    model = FIXTURE_MODELS / "cifar10_separable_reference.json"
    page.set_input_files("input[type=file]", str(model))
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"/s/\d+/$"))
    submission = Submission.objects.get()

    assert stages.execute_build(submission.pk, worker="cpu@host#b.1") == stages.DONE
    assert stages.execute_check(submission.pk, worker="cpu@host#c.1") == stages.DONE
    assert stages.execute_train(submission.pk, worker="gpu@host#t.1") == stages.WAITING

    # The page polls: the verdicts of the static rules and the reason training waits appear.
    message = page.locator("#submission-message")
    expect(message).to_contain_text(
        "Training is not available yet: the course staff has been told."
    )
    expect(page.locator('[data-stage="training"]')).to_have_text("Training: waiting for data")
    report = page.locator("#rule-report")
    static = ("separable_conv_used", "only_separable_convs", "max_params", "min_receptive_field")
    for rule in static:
        expect(report.locator("tr", has_text=rule).locator(".mark.pass")).to_be_visible()
    training = report.locator("tr", has_text="min_val_accuracy")
    expect(training.locator(".mark.pending")).to_be_visible()
    expect(page.locator("#layers")).to_contain_text("SeparableConv2D")
    text = page.locator("main").inner_text()
    assert str(offline_machine) not in text and "manage.py" not in text
    assert "Infrastructure error" not in text
    screenshot(page, "cifar10-without-dataset-student")

    # The upload is not charged: every submission of the day is still left.
    page.goto(f"/a/{cifar_assignment.slug}/")
    expect(page.locator("#left-today")).to_have_text(str(cifar_assignment.daily_quota))

    page.context.clear_cookies()
    log_in(page, "prof", PASSWORD)
    page.goto("/manage/")
    row = page.locator("#dataset-cifar10")
    expect(row).to_contain_text("not installed")
    expect(row.locator("code.command")).to_have_text("python manage.py fetch_dataset cifar10")
    expect(row.locator(".waiting-count")).to_have_text("1")
    expect(row).to_contain_text("airplane, automobile, bird, cat, deer, dog, frog, horse, ship")
    screenshot(page, "cifar10-without-dataset-instructor")
