"""Queue health in Chromium (issue 13, part 6): what an instructor needs to act on one page."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from assignments.models import Submission
from assignments.services.worker_presence import record_worker
from tests.browser.conftest import log_in
from tests.support.site_fixtures import PASSWORD, make_submission

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_dir", "broker_dir"),
]


def test_the_instructor_sees_a_dead_gpu_queue_and_what_is_stuck(
    page, screenshot, instructor, student, assignment, settings, tmp_path
):
    settings.GRADER_DATA_DIR = tmp_path / "data"
    now = timezone.now()
    record_worker(
        node="cpu@grader1", queues=["maintenance", "preflight"], sandbox="bwrap", gpus=[],
        started_at=now - dt.timedelta(hours=2), concurrency=2,
    )  # fmt: skip
    record_worker(
        node="gpu@grader2", queues=["gpu"], sandbox="docker", gpus=["0", "1"],
        started_at=now - dt.timedelta(hours=2), now=now - dt.timedelta(minutes=7),
    )  # fmt: skip
    stuck = make_submission(assignment, student, status="training", with_result=False)
    Submission.objects.filter(pk=stuck.pk).update(
        worker="gpu@grader2/gpu0#abc.1", training_at=now - dt.timedelta(minutes=30),
        heartbeat_at=now - dt.timedelta(minutes=7),
    )  # fmt: skip
    failed = make_submission(assignment, student, status="error", reason="infrastructure")
    Submission.objects.filter(pk=failed.pk).update(
        message="The docker sandbox is not available: Cannot connect to the Docker daemon.",
        finished_at=now,
    )
    log_in(page, "prof", PASSWORD)
    page.goto("/manage/")
    page.get_by_role("link", name="Queue health").click()

    expect(page.locator("#queue-gpu")).to_contain_text("none")
    expect(page.locator("#queue-preflight")).to_contain_text("1")
    expect(page.locator("#workers .worker-silent")).to_contain_text("gpu@grader2")
    expect(page.locator("#workers .worker-silent")).to_contain_text("0, 1")
    expect(page.locator("#running-stages tr.stale")).to_contain_text(f"#{stuck.pk:,}")
    expect(page.locator("#infrastructure-errors")).to_contain_text("Cannot connect")
    expect(page.locator("#datasets")).to_contain_text("synthetic")
    screenshot(page, "queue-health")
